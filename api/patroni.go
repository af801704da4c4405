package api

// PatroniBody answers a Patroni endpoint that pgquorum does not serve (501),
// or a Patroni check that no pgquorum node can pass as configured (503: the
// synchronous standby checks with failover.synchronous off): why, and the
// pgquorum endpoints or commands that serve the purpose instead.
type PatroniBody struct {
	Path   string   `json:"path"`
	Reason string   `json:"reason"`
	Use    []string `json:"use,omitempty"`
}

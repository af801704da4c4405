package consensus

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
)

// maxActionBody bounds the answer to an action forwarded between peers
// (a switchover with its steps).
const maxActionBody = 256 << 10

// Post sends req as JSON to addr's path and decodes the answer into out:
// the peers' internal actions (a command carried to the coordinator, a
// release of votes). An answer other than 200 is an error carrying the
// body's first line.
func (p *HTTPPeers) Post(ctx context.Context, addr, path string, req, out any) error {
	body, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("encode %s request: %w", path, err)
	}
	x, err := p.do(ctx, http.MethodPost, addr, path, body, maxActionBody)
	if err != nil {
		return err
	}
	if x.status != http.StatusOK {
		return fmt.Errorf("%s%s: status %d: %s", addr, path, x.status, firstLine(x.body))
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(x.body, out); err != nil {
		return fmt.Errorf("%s%s: decode: %w", addr, path, err)
	}
	return nil
}

func firstLine(b []byte) string {
	s := string(b)
	for i, r := range s {
		if r == '\n' || i >= 200 {
			return s[:i]
		}
	}
	return s
}

package repmgr

import (
	"context"
	"fmt"
)

// CLI drives failover through the repmgr command line tool, so that repmgr's
// own checks, metadata updates and event notifications all happen as they
// would for an operator.
type CLI struct {
	Bin        string // path of the repmgr binary
	ConfigFile string // this node's repmgr.conf
	Runner     Runner
}

func (c CLI) run(ctx context.Context, args ...string) (string, error) {
	args = append([]string{"-f", c.ConfigFile}, args...)
	out, err := c.Runner.Run(ctx, c.Bin, args...)
	if err != nil {
		return out, fmt.Errorf("repmgr %s: %w", args[2], err)
	}
	return out, nil
}

// Promote promotes this standby ("repmgr standby promote"). repmgr refuses
// while another active primary is reachable.
func (c CLI) Promote(ctx context.Context) (string, error) {
	return c.run(ctx, "standby", "promote")
}

// Follow points this standby at the current primary ("repmgr standby follow").
func (c CLI) Follow(ctx context.Context) (string, error) {
	return c.run(ctx, "standby", "follow")
}

// Rejoin brings a stopped former primary back as a standby of the primary
// reached through upstreamConninfo ("repmgr node rejoin"), rewinding it first
// when forceRewind is set.
func (c CLI) Rejoin(ctx context.Context, upstreamConninfo string, forceRewind bool) (string, error) {
	args := []string{"node", "rejoin", "-d", upstreamConninfo}
	if forceRewind {
		args = append(args, "--force-rewind")
	}
	return c.run(ctx, args...)
}

package repmgr

import (
	"context"
	"fmt"
	"strconv"
)

// CLI drives failover through the repmgr command line tool, so that repmgr's
// own checks, metadata updates and event notifications all happen as they
// would for an operator.
type CLI struct {
	Bin        string // path of the repmgr binary
	ConfigFile string // this node's repmgr.conf
	Runner     Runner
	// ConfigArchiveDir is where node rejoin keeps its copy of the
	// configuration files; empty: repmgr's default, /tmp, in a directory
	// named for the node, which instances of one name on one machine share.
	ConfigArchiveDir string
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

// FollowUpstream points this standby at the node of upstreamID ("repmgr
// standby follow --upstream-node-id"): repmgr records it as the standby's
// upstream and sets up its replication slot there.
func (c CLI) FollowUpstream(ctx context.Context, upstreamID int) (string, error) {
	return c.run(ctx, "standby", "follow", "--upstream-node-id="+strconv.Itoa(upstreamID))
}

// Rejoin brings a stopped former primary back as a standby of the primary
// reached through upstreamConninfo ("repmgr node rejoin"), rewinding it first
// when forceRewind is set.
func (c CLI) Rejoin(ctx context.Context, upstreamConninfo string, forceRewind bool) (string, error) {
	args := []string{"node", "rejoin", "-d", upstreamConninfo}
	if c.ConfigArchiveDir != "" {
		args = append(args, "--config-archive-dir="+c.ConfigArchiveDir)
	}
	if forceRewind {
		args = append(args, "--force-rewind")
	}
	return c.run(ctx, args...)
}

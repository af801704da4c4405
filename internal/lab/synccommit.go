package lab

import (
	"context"
	"fmt"
)

// CommitSynchronously turns synchronous_commit on in every node's
// postgresql.auto.conf and reloads: the lab's postgresql.conf turns it off,
// under which no commit waits for a standby, whatever
// synchronous_standby_names says. For clusters that run
// failover.synchronous on or strict.
func (c *Cluster) CommitSynchronously(ctx context.Context) error {
	for _, n := range c.Nodes {
		for _, sql := range []string{"ALTER SYSTEM SET synchronous_commit = on", "SELECT pg_reload_conf()"} {
			if err := n.Exec(ctx, sql); err != nil {
				return fmt.Errorf("lab: %s: synchronous_commit on: %w", n.Name, err)
			}
		}
	}
	return nil
}

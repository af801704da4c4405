package lab

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// CrashInstance ends every process of the node's PostgreSQL with SIGKILL
// at once, as the loss of the machine would: the postmaster is stopped
// first so that it restarts nothing, then its children (the walsenders
// among them, so that no more WAL leaves) and it are killed.
func (n *Node) CrashInstance() error {
	pids, err := n.instancePIDs()
	if err != nil {
		return err
	}
	_ = syscall.Kill(pids[0], syscall.SIGSTOP)
	for i := len(pids) - 1; i >= 0; i-- {
		_ = syscall.Kill(pids[i], syscall.SIGKILL)
	}
	n.c.opts.Logf("lab: %s: killed %d PostgreSQL processes with SIGKILL", n.Name, len(pids))
	return nil
}

// StallReplication drops what primary's PostgreSQL sends on its
// replication connections (to the walreceivers' ports, as
// pg_stat_replication shows them), until Heal: its WAL stops reaching the
// standbys at once, as over a stalled link, while its clients, HAProxy's
// among them, are still answered. On loopback every connection comes from
// 127.0.0.1, so the walsenders' packets are told by their ports.
func (c *Cluster) StallReplication(ctx context.Context, primary *Node) error {
	if c.subnet == 0 || c.owner == nil {
		return fmt.Errorf("lab: StallReplication needs Options.OwnAddresses, as root")
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := primary.Connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(ctx, "SELECT client_port FROM pg_stat_replication WHERE client_port > 0")
	if err != nil {
		return fmt.Errorf("lab: %s: walsenders: %w", primary.Name, err)
	}
	var ports []string
	for rows.Next() {
		var p int
		if err := rows.Scan(&p); err != nil {
			return err
		}
		ports = append(ports, strconv.Itoa(p))
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if len(ports) == 0 {
		return fmt.Errorf("lab: %s has no walsender", primary.Name)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.ensureFirewall(ctx); err != nil {
		return err
	}
	if err := nft(ctx, "add", "rule", "inet", c.firewall.table, "out", "meta", "skuid", primary.owner.Uid,
		"tcp", "sport", strconv.Itoa(primary.PGPort), "tcp", "dport", "{ "+strings.Join(ports, ", ")+" }", "drop"); err != nil {
		return err
	}
	c.opts.Logf("lab: %s's WAL to the walreceivers on ports %v dropped", primary.Name, ports)
	return nil
}

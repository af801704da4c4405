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
// replication connections (from its address and port to the walreceivers'
// ports, as pg_stat_replication shows them), until Heal: its WAL stops
// reaching the standbys at once, as over a stalled link, while its
// clients, HAProxy's among them, are still answered. It returns cut, the
// primary's WAL insert position once the rule is in place: no standby can
// receive WAL past it before Heal.
//
// The rule matches addresses and ports, not the sending user (meta skuid):
// once CrashInstance has killed the walsenders, the kernel goes on
// retransmitting what they left in their sockets, and an orphaned socket
// has no owner for skuid to match, so those retransmissions would pass and
// deliver the WAL of the stall to the standbys after all.
func (c *Cluster) StallReplication(ctx context.Context, primary *Node) (cut int64, err error) {
	if c.subnet == 0 || c.owner == nil {
		return 0, fmt.Errorf("lab: StallReplication needs Options.OwnAddresses, as root")
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := primary.Connect(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(ctx, "SELECT client_port FROM pg_stat_replication WHERE client_port > 0")
	if err != nil {
		return 0, fmt.Errorf("lab: %s: walsenders: %w", primary.Name, err)
	}
	var ports []string
	for rows.Next() {
		var p int
		if err := rows.Scan(&p); err != nil {
			return 0, err
		}
		ports = append(ports, strconv.Itoa(p))
	}
	if err := rows.Err(); err != nil {
		return 0, err
	}
	if len(ports) == 0 {
		return 0, fmt.Errorf("lab: %s has no walsender", primary.Name)
	}
	if err := c.dropFrom(ctx, primary, ports); err != nil {
		return 0, err
	}
	if err := conn.QueryRow(ctx, "SELECT (pg_current_wal_insert_lsn() - '0/0')::bigint").Scan(&cut); err != nil {
		return 0, fmt.Errorf("lab: %s: WAL position at the stall: %w", primary.Name, err)
	}
	c.opts.Logf("lab: %s's WAL to the walreceivers on ports %v dropped from %X/%X", primary.Name, ports, cut>>32, uint32(cut))
	return cut, nil
}

// dropFrom adds the rule of StallReplication.
func (c *Cluster) dropFrom(ctx context.Context, primary *Node, ports []string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.ensureFirewall(ctx); err != nil {
		return err
	}
	return nft(ctx, "add", "rule", "inet", c.firewall.table, "out", "ip", "saddr", primary.Host,
		"tcp", "sport", strconv.Itoa(primary.PGPort), "tcp", "dport", "{ "+strings.Join(ports, ", ")+" }", "counter", "drop")
}

// ForkLSN is where n's current timeline begins: the switchpoint that its
// promotion wrote in the timeline's history file, the end of the WAL it
// had replayed as a standby. n must be a primary.
func (n *Node) ForkLSN(ctx context.Context) (int64, error) {
	lsn, err := n.QueryInt(ctx, `SELECT (split_part(l, E'\t', 2)::pg_lsn - '0/0')::bigint
		FROM regexp_split_to_table(pg_read_file('pg_wal/' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8) || '.history'), E'\n')
			WITH ORDINALITY AS t(l, i)
		WHERE l ~ '^[0-9]' ORDER BY i DESC LIMIT 1`)
	if err != nil {
		return 0, fmt.Errorf("lab: %s: where its timeline forked: %w", n.Name, err)
	}
	return lsn, nil
}

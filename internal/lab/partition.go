package lab

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// Firewall is an nftables table of the cluster's own that drops traffic
// between chosen pairs of its nodes (Options OwnAddresses): a network
// partition between processes of one machine. On loopback every connection
// leaves from 127.0.0.1, so a packet is told by its sender's OS user (each
// node has its own) and its destination (each node has its own address).
// Dropping every packet one side sends to the other stalls every connection
// between them, as a real partition does.
type Firewall struct {
	table string
}

func nft(ctx context.Context, args ...string) error {
	out, err := exec.CommandContext(ctx, "nft", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("nft %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Partition drops every packet between each node of a and each node of b,
// both ways, until Heal. The traffic of other processes (HAProxy's, the
// test's own) still flows.
func (c *Cluster) Partition(ctx context.Context, a, b []*Node) error {
	var pairs [][2]*Node
	for _, x := range a {
		for _, y := range b {
			pairs = append(pairs, [2]*Node{x, y}, [2]*Node{y, x})
		}
	}
	return c.drop(ctx, pairs, fmt.Sprintf("partition %v | %v", names(a), names(b)))
}

// PartitionOneWay drops every packet each node of from sends to the
// address of each node of to, until Heal. On loopback every connection
// leaves from 127.0.0.1, so answers to a connection opened by to still
// arrive: to still reaches from (its votes, its Raft messages), while from
// can no longer open a connection to to, nor have what it sends on one it
// opened before arrive (a standby's replies and acknowledgements to its
// primary: the primary's TCP window fills, and its WAL stops arriving).
// That is the one-way partition of the field notes: to drops only new
// traffic from the others.
func (c *Cluster) PartitionOneWay(ctx context.Context, from, to []*Node) error {
	var pairs [][2]*Node
	for _, x := range from {
		for _, y := range to {
			pairs = append(pairs, [2]*Node{x, y})
		}
	}
	return c.drop(ctx, pairs, fmt.Sprintf("one-way partition %v -/-> %v", names(from), names(to)))
}

// DropPort drops every packet from's processes send to port at to's
// address, until Heal: from can no longer reach that one service of to
// (its database, say), while everything else flows.
func (c *Cluster) DropPort(ctx context.Context, from, to *Node, port int) error {
	return c.dropMatching(ctx, [][2]*Node{{from, to}}, []string{"tcp", "dport", fmt.Sprint(port)},
		fmt.Sprintf("drop %s -/-> %s:%d", from.Name, to.Name, port))
}

// Loss drops percent % of the packets, drawn at random for each packet,
// between n and each node of peers, both ways (as Partition), until Heal:
// a lossy network. sch_netem is not everywhere (a kernel without it says
// "Specified qdisc kind is unknown"), and a qdisc on lo would slow every
// process's loopback traffic; nftables' numgen draws per packet.
func (c *Cluster) Loss(ctx context.Context, n *Node, peers []*Node, percent int) error {
	if percent < 1 || percent > 99 {
		return fmt.Errorf("lab: loss of %d %%: want 1 to 99", percent)
	}
	var pairs [][2]*Node
	for _, p := range peers {
		pairs = append(pairs, [2]*Node{n, p}, [2]*Node{p, n})
	}
	return c.dropMatching(ctx, pairs, []string{"numgen", "random", "mod", "100", "<", fmt.Sprint(percent)},
		fmt.Sprintf("drop %d %% of the packets between %s and %v", percent, n.Name, names(peers)))
}

// drop adds a rule dropping what pair[0] sends to pair[1], for each pair.
func (c *Cluster) drop(ctx context.Context, pairs [][2]*Node, what string) error {
	return c.dropMatching(ctx, pairs, nil, what)
}

// dropMatching adds a rule dropping what pair[0] sends to pair[1] that
// also matches match (nft words; none: everything), for each pair.
func (c *Cluster) dropMatching(ctx context.Context, pairs [][2]*Node, match []string, what string) error {
	if c.subnet == 0 || c.owner == nil {
		return fmt.Errorf("lab: Partition needs Options.OwnAddresses, as root")
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.ensureFirewall(ctx); err != nil {
		return err
	}
	for _, pair := range pairs {
		args := append([]string{"add", "rule", "inet", c.firewall.table, "out",
			"meta", "skuid", pair[0].owner.Uid, "ip", "daddr", pair[1].Host}, match...)
		if err := nft(ctx, append(args, "drop")...); err != nil {
			return err
		}
	}
	c.opts.Logf("lab: %s", what)
	return nil
}

// ensureFirewall creates the cluster's table and chain once; c.mu is held.
func (c *Cluster) ensureFirewall(ctx context.Context) error {
	if c.firewall == nil {
		fw := &Firewall{table: fmt.Sprintf("pgq_lab_%d", c.subnet)}
		_ = nft(ctx, "delete", "table", "inet", fw.table) // left over by a killed run
		if err := nft(ctx, "add", "table", "inet", fw.table); err != nil {
			return err
		}
		if err := nft(ctx, "add", "chain", "inet", fw.table, "out", "{ type filter hook output priority 0; policy accept; }"); err != nil {
			return err
		}
		c.firewall = fw
	}
	return nil
}

// Heal lets every packet through again.
func (c *Cluster) Heal(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.firewall == nil {
		return nil
	}
	c.opts.Logf("lab: heal the partition")
	return nft(ctx, "flush", "chain", "inet", c.firewall.table, "out")
}

// Remove deletes the table.
func (f *Firewall) Remove() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = nft(ctx, "delete", "table", "inet", f.table)
}

func names(nodes []*Node) []string {
	out := make([]string, len(nodes))
	for i, n := range nodes {
		out[i] = n.Name
	}
	return out
}

package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
)

// HAProxy listeners of the demo, after the port base.
const (
	rwOffset    = 201
	roOffset    = 202
	statsOffset = 203
)

func (d *demoRun) port(offset int) int { return d.c.Nodes[0].PGPort - 1 + offset }

// startHAProxy renders haproxy.cfg with the real "pgquorum haproxy-config"
// from node1's repmgr.nodes, as an operator would, and starts HAProxy on it.
func (d *demoRun) startHAProxy(ctx context.Context, pgquorum string) error {
	cfgPath, socket := d.c.HAProxyPaths()
	args := []string{"haproxy-config", "--dsn", d.c.Nodes[0].Conninfo(), "--output", cfgPath + ".rendered",
		"--rw-listen", d.addr(rwOffset), "--ro-listen", d.addr(roOffset), "--stats-listen", d.addr(statsOffset),
		"--stats-socket", socket, "--inter", "200ms", "--fall", "2", "--rise", "1"} // the fast profile's settings
	for _, n := range d.c.Nodes {
		args = append(args, "--node-check-port", n.Name+"="+strconv.Itoa(n.QuorumPort))
	}
	if out, err := exec.CommandContext(ctx, pgquorum, args...).CombinedOutput(); err != nil {
		return fmt.Errorf("pgquorum haproxy-config: %w\n%s", err, out)
	}
	cfg, err := os.ReadFile(cfgPath + ".rendered")
	if err != nil {
		return err
	}
	h, err := d.c.StartHAProxy(ctx, string(cfg))
	if err != nil {
		return fmt.Errorf("start haproxy: %w", err)
	}
	d.haproxy = h
	return nil
}

func (d *demoRun) addr(offset int) string { return "127.0.0.1:" + strconv.Itoa(d.port(offset)) }

func (d *demoRun) printHAProxyEndpoints() {
	fmt.Fprintf(d.out, "  HAProxy: writes psql -h 127.0.0.1 -p %d -U repmgr repmgr ; reads -p %d ; stats http://%s/ ; config %s\n",
		d.port(rwOffset), d.port(roOffset), d.addr(statsOffset), d.haproxyConfig())
}

func (d *demoRun) haproxyConfig() string {
	cfg, _ := d.c.HAProxyPaths()
	return cfg
}

// printWrites shows which node a new connection through the read-write
// listener reaches, if any.
func (d *demoRun) printWrites(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	dsn := fmt.Sprintf("host=127.0.0.1 port=%d user=repmgr dbname=repmgr sslmode=disable connect_timeout=2", d.port(rwOffset))
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		fmt.Fprintf(d.out, "  writes through HAProxy :%d: refused — no server passes /state 200 (%v)\n", d.port(rwOffset), err)
		return
	}
	defer conn.Close(ctx)
	var port int
	if err := conn.QueryRow(ctx, "SELECT inet_server_port()").Scan(&port); err != nil {
		fmt.Fprintf(d.out, "  writes through HAProxy :%d: %v\n", d.port(rwOffset), err)
		return
	}
	for _, n := range d.c.Nodes {
		if n.PGPort == port {
			fmt.Fprintf(d.out, "  writes through HAProxy :%d land on %s\n", d.port(rwOffset), n.Name)
		}
	}
}

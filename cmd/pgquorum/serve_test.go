package main

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/config"
	"github.com/pgquorum/pgquorum/consensus"
)

// TestWaitForEndReturnsWhenAPartFails: with failover off (no controller
// channel) a failed HTTP or agent listener ends serve; it used to be masked
// by the closed channel that stood for the missing controller.
func TestWaitForEndReturnsWhenAPartFails(t *testing.T) {
	failed := func() chan error { c := make(chan error, 1); c <- errors.New("listener closed"); return c }
	tests := []struct {
		name              string
		serve, agent, ctl chan error
		cancel            bool
		wantErr           string
		wantCtlDone       bool
	}{
		{name: "HTTP fails, failover off", serve: failed(), wantErr: "serve HTTP: listener closed"},
		{name: "agent fails, failover off", serve: make(chan error), agent: failed(), wantErr: "serve HAProxy agent: listener closed"},
		{name: "HTTP fails, failover on", serve: failed(), ctl: make(chan error), wantErr: "serve HTTP"},
		{name: "controller fails", serve: make(chan error), ctl: failed(), wantErr: "failover: listener closed", wantCtlDone: true},
		{name: "controller stops by itself", serve: make(chan error), ctl: func() chan error { c := make(chan error, 1); c <- nil; return c }(),
			wantErr: "stopped by itself", wantCtlDone: true},
		{name: "shutdown", serve: make(chan error), cancel: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if tt.cancel {
				cancel()
			}
			done, err := waitForEnd(ctx, tt.serve, tt.agent, tt.ctl)
			if ctx.Err() != nil && !tt.cancel {
				t.Fatal("waitForEnd waited for the deadline: the failure was not seen")
			}
			if (err == nil) != (tt.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("error %v, want %q", err, tt.wantErr)
			}
			if done != tt.wantCtlDone {
				t.Fatalf("ctlDone %v, want %v", done, tt.wantCtlDone)
			}
		})
	}
}

func TestRefuseRootInFailoverMode(t *testing.T) {
	cfg := func(mode api.FailoverMode, fence string) config.Config {
		return config.Config{DataDir: "/var/lib/postgresql/15/main", Failover: config.Failover{Mode: mode, Fence: fence}}
	}
	tests := []struct {
		name    string
		cfg     config.Config
		euid    int
		refused bool
	}{
		{name: "pgquorum mode as root", cfg: cfg(api.ModePgquorum, api.FenceOff), euid: 0, refused: true},
		{name: "pgquorum mode as postgres", cfg: cfg(api.ModePgquorum, api.FenceOff), euid: 108},
		{name: "repmgrd mode that fences, as root", cfg: cfg(api.ModeRepmgrd, api.FenceStop), euid: 0, refused: true},
		{name: "repmgrd mode without fencing, as root", cfg: cfg(api.ModeRepmgrd, api.FenceOff), euid: 0},
		{name: "report only, as root", cfg: cfg(api.ModeOff, api.FenceOff), euid: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := refuseRoot(tt.cfg, tt.euid)
			if (err != nil) != tt.refused {
				t.Fatalf("refuseRoot: %v, want refused %v", err, tt.refused)
			}
			if err != nil && !strings.Contains(err.Error(), "run pgquorum as the owner of /var/lib/postgresql/15/main") {
				t.Fatalf("the error does not say whom to run as: %v", err)
			}
		})
	}
}

// TestNewBallotRefusesAnotherNodesLease: two instances given one
// consensus.state_dir must not start, or each would honour the other's
// votes as its own.
func TestNewBallotRefusesAnotherNodesLease(t *testing.T) {
	dir := t.TempDir()
	other := consensus.LeaseFile{Path: filepath.Join(dir, leaseFileName), Owner: consensus.LeaseOwner{Node: "node2", NodeID: 2}}
	if err := other.Save(consensus.Lease{Holder: "node1", HolderID: 1, Until: consensus.SystemMonotonic() + time.Minute,
		Saved: consensus.SystemMonotonic(), Length: time.Minute}); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	cfg := config.Config{NodeName: "node1", NodeID: 1, StateDir: dir, CacheTTL: time.Second}
	if _, err := newBallot(cfg, log); !errors.Is(err, consensus.ErrNotOurLease) || !strings.Contains(err.Error(), "consensus.state_dir") {
		t.Fatalf("newBallot with node2's lease file = %v, want an error naming consensus.state_dir", err)
	}
	cfg.NodeName, cfg.NodeID = "node2", 2
	if _, err := newBallot(cfg, log); err != nil {
		t.Fatalf("newBallot of the file's owner = %v", err)
	}
}

package failover

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/pgquorum/pgquorum/api"
)

// fenceLog records this node's fences in the Raft log, through the
// coordinator, in a goroutine of its own: an unreachable coordinator must
// not hold up the actor. Those not recorded are tried again every refresh
// interval, in order, and kept in the Raft directory meanwhile: a fence
// made by a pgquorum that is stopped (or crash-loops) before it reaches a
// coordinator is recorded by the next one.
type fenceLog struct {
	opts    Options
	m       *member
	fences  <-chan api.Fence
	command func(context.Context, api.Command) api.CommandResult
}

// pendingFencesFile holds, in the Raft directory, the fences not recorded yet.
const pendingFencesFile = "fences-pending.json"

func (l *fenceLog) run(ctx context.Context) {
	t := time.NewTicker(l.opts.RefreshInterval)
	defer t.Stop()
	pending, err := l.load()
	if err != nil {
		l.opts.Logger.Warn("fences not recorded by an earlier run are lost", "error", err)
	}
	for {
		select {
		case <-ctx.Done():
			return
		case f := <-l.fences:
			pending = append(pending, f)
			l.keep(pending)
		case <-t.C:
		}
		if left := l.record(ctx, pending); len(left) != len(pending) {
			pending = left
			l.keep(pending)
		}
	}
}

// record records pending in order, and returns those left.
func (l *fenceLog) record(ctx context.Context, pending []api.Fence) []api.Fence {
	for len(pending) > 0 {
		if l.m.coordinator() == "" {
			return pending
		}
		f := pending[0]
		res := l.command(ctx, api.Command{Kind: api.CommandFence, Reason: f.Reason, At: f.At})
		if !res.OK {
			l.opts.Logger.Debug("record the fence", "error", res.Error)
			return pending
		}
		pending = pending[1:]
	}
	return nil
}

func (l *fenceLog) path() string { return filepath.Join(l.opts.Raft.Dir, pendingFencesFile) }

// load reads the fences an earlier run left unrecorded.
func (l *fenceLog) load() ([]api.Fence, error) {
	if l.opts.Raft.Dir == "" {
		return nil, nil
	}
	b, err := os.ReadFile(l.path())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the fences not recorded: %w", err)
	}
	var pending []api.Fence
	if err := json.Unmarshal(b, &pending); err != nil {
		return nil, fmt.Errorf("decode %s: %w", l.path(), err)
	}
	return pending, nil
}

// keep writes pending (removes the file when none are left).
func (l *fenceLog) keep(pending []api.Fence) {
	if l.opts.Raft.Dir == "" {
		return
	}
	var err error
	if len(pending) == 0 {
		if err = os.Remove(l.path()); errors.Is(err, os.ErrNotExist) {
			err = nil
		}
	} else {
		b, _ := json.Marshal(pending) // api.Fence always encodes
		tmp := l.path() + ".tmp"
		if err = os.WriteFile(tmp, b, 0o600); err == nil {
			err = os.Rename(tmp, l.path())
		}
	}
	if err != nil {
		l.opts.Logger.Warn("keep the fences not recorded yet", "error", err)
	}
}

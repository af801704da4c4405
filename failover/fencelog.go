package failover

import (
	"context"
	"time"

	"github.com/pgquorum/pgquorum/api"
)

// fenceLog records this node's fences in the Raft log, through the
// coordinator, in a goroutine of its own: an unreachable coordinator must
// not hold up the actor. Those not recorded are tried again every refresh
// interval, in order.
type fenceLog struct {
	opts    Options
	m       *member
	fences  <-chan api.Fence
	command func(context.Context, api.Command) api.CommandResult
}

func (l *fenceLog) run(ctx context.Context) {
	t := time.NewTicker(l.opts.RefreshInterval)
	defer t.Stop()
	var pending []api.Fence
	for {
		select {
		case <-ctx.Done():
			return
		case f := <-l.fences:
			pending = append(pending, f)
		case <-t.C:
		}
		pending = l.record(ctx, pending)
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

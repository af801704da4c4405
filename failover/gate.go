package failover

import (
	"context"
	"fmt"
	"time"

	"github.com/pgquorum/pgquorum/api"
)

// With failover.mode repmgrd, the coordinator detects the loss of the
// primary and commits its successor as in pgquorum mode, but no node acts
// on it: repmgrd promotes, and "pgquorum failover-check", its
// failover_validation_command, lets it promote only the committed
// successor, and only once per decision (EntryAllow). Two repmgrd
// instances that each think they won are never both allowed.

// GateView is what decides the answer of failover-check, besides the
// once-only record that the coordinator commits.
type GateView struct {
	Mode   api.FailoverMode
	Self   string
	Ready  bool
	Latest api.Decision
	HasAny bool
}

// Gate answers failover-check from the committed state: allowed (subject
// to the record of the allowance), refused for good, or undecided yet (the
// coordinator has not decided the primary is lost), with why.
func Gate(v GateView) (allowed, final bool, why string) {
	d := v.Latest
	switch {
	case v.Mode != api.ModeRepmgrd:
		return false, true, fmt.Sprintf("failover.mode is %s, not repmgrd", v.Mode)
	case !v.Ready:
		return false, false, "no raft leader is heard: the committed state may be stale"
	case !v.HasAny:
		return false, false, "no primary is committed yet"
	case d.Primary != v.Self && d.PromotedAt == nil && d.OldPrimary != "":
		return false, true, fmt.Sprintf("the raft group chose %s, not %s, to replace %s (epoch %d)", d.Primary, v.Self, d.OldPrimary, d.Epoch)
	case d.Primary != v.Self:
		// Not final: the coordinator may yet decide it is lost.
		return false, false, fmt.Sprintf("%s is the committed primary (epoch %d): a majority has not confirmed its loss", d.Primary, d.Epoch)
	case d.OldPrimary == "":
		return false, true, fmt.Sprintf("%s is the adopted primary of epoch %d: nothing to promote", v.Self, d.Epoch)
	case d.PromotedAt != nil:
		return false, true, fmt.Sprintf("%s was promoted already for epoch %d", v.Self, d.Epoch)
	case d.AllowedAt != nil:
		return false, true, fmt.Sprintf("repmgrd was allowed to promote %s for epoch %d already, at %s", v.Self, d.Epoch, d.AllowedAt.Format(time.RFC3339Nano))
	}
	return true, true, fmt.Sprintf("%s is the committed successor of %s (epoch %d): %s", v.Self, d.OldPrimary, d.Epoch, d.Reason)
}

// FailoverCheck answers "pgquorum failover-check" on this node: whether
// repmgrd may promote it now. It waits up to wait for the Raft group to
// decide; any doubt is a refusal.
func (c *Controller) FailoverCheck(ctx context.Context, wait time.Duration) api.FailoverCheckAnswer {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	ans := api.FailoverCheckAnswer{Node: c.opts.Self}
	for {
		changed := c.fsm.Changed()
		st := c.fsm.State()
		d, ok := st.Latest()
		allowed, final, why := Gate(GateView{Mode: c.opts.Mode, Self: c.opts.Self, Ready: c.m.ready(), Latest: d, HasAny: ok})
		ans.Epoch, ans.Reason = d.Epoch, why
		if allowed {
			res := c.Command(ctx, api.Command{Kind: api.CommandAllow, Epoch: d.Epoch})
			ans.Allowed = res.OK
			if !res.OK {
				ans.Reason = "the allowance was not recorded: " + res.Error
			}
			c.opts.Logger.Warn("failover-check", "allowed", ans.Allowed, "epoch", d.Epoch, "reason", ans.Reason)
			return ans
		}
		if final {
			c.opts.Logger.Warn("failover-check", "allowed", false, "epoch", d.Epoch, "reason", why)
			return ans
		}
		select {
		case <-ctx.Done():
			ans.Reason = fmt.Sprintf("no decision within %s: %s", wait, why)
			c.opts.Logger.Warn("failover-check", "allowed", false, "epoch", d.Epoch, "reason", ans.Reason)
			return ans
		case <-changed:
		case <-time.After(c.opts.RefreshInterval):
		}
	}
}

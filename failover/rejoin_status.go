package failover

import (
	"fmt"
	"time"

	"github.com/pgquorum/pgquorum/api"
)

// The rejoin's retries and what they show: the runner tries a rejoin
// again after its backoff for as long as the decision stands, and each
// attempt and its outcome go to the log, to /state's failover object
// (api.RejoinStatus) and to the metrics (the board's counters).

// due tells whether the runner tries the action of a now: a rejoin after
// its backoff, any number of times; the others at most maxAttempts times,
// not within ten refresh intervals of a failure.
func (r *actionRunner) due(a *attempt, kind api.ActionKind, now time.Time) bool {
	switch {
	case a.ok:
		return false
	case a.n == 0:
		return true
	case kind == api.ActionRejoin:
		return now.Sub(a.last) >= rejoinBackoff(a.n, a.permanent)
	}
	return a.n < maxAttempts && now.Sub(a.last) >= 10*r.opts.RefreshInterval
}

// rejoinStarted shows attempt a.n of the rejoin of d as running.
func (r *actionRunner) rejoinStarted(d api.Decision, a *attempt) {
	r.opts.Logger.Info("rejoin attempt started", "epoch", d.Epoch, "primary", d.Primary, "attempt", a.n, "reason", a.why)
	r.board.updateRejoin(func(b *rejoinBoard) {
		b.attempts++
		prev := b.status
		s := api.RejoinStatus{Epoch: d.Epoch, Primary: d.Primary, Attempt: a.n, Running: true, Reason: a.why}
		if prev != nil && prev.Epoch == d.Epoch {
			s.LastError, s.Permanent, s.ManualStep = prev.LastError, prev.Permanent, prev.ManualStep
		}
		b.status = &s
	})
}

// rejoinEnded records the outcome of the attempt: a success ends the
// rejoin; a failure is counted, sorted (can retrying fix it?) and shown
// with the time of the next attempt.
func (r *actionRunner) rejoinEnded(d api.Decision, a *attempt, err error) {
	now := r.opts.Now()
	a.last = now // the backoff runs from the end of the attempt
	if err == nil {
		r.opts.Logger.Info("rejoin attempt succeeded", "epoch", d.Epoch, "primary", d.Primary, "attempt", a.n, "reason", a.why)
		r.board.updateRejoin(func(b *rejoinBoard) { b.status = nil })
		return
	}
	why, permanent := rejoinFailure(err)
	a.permanent = permanent
	next := now.Add(rejoinBackoff(a.n, permanent)).UTC()
	s := api.RejoinStatus{Epoch: d.Epoch, Primary: d.Primary, Attempt: a.n, Reason: a.why, LastError: api.ErrorText(err), NextAt: &next}
	if permanent {
		s.Permanent = true
		s.ManualStep = why + "; " + manualRejoinStep(r.opts.RepmgrConfigFile, r.primaryConninfo(d))
		r.opts.Logger.Error("rejoin cannot succeed by retrying: the operator must rebuild this node", "epoch", d.Epoch,
			"primary", d.Primary, "attempt", a.n, "why", why, "manual_step", s.ManualStep, "error", err)
	} else {
		r.opts.Logger.Warn("rejoin attempt failed: trying again", "epoch", d.Epoch, "primary", d.Primary,
			"attempt", a.n, "next_attempt_at", next, "error", err)
	}
	r.board.updateRejoin(func(b *rejoinBoard) {
		b.failures++
		b.status = &s
	})
}

// primaryConninfo is the conninfo of d's primary as this node knows it.
func (r *actionRunner) primaryConninfo(d api.Decision) string {
	if r.conninfo != nil {
		if c := r.conninfo(d.PrimaryID); c != "" {
			return c
		}
	}
	return "<conninfo of " + d.Primary + ">"
}

// rejoinBoard is the status board's part for the rejoin.
type rejoinBoard struct {
	status             *api.RejoinStatus // the rejoin under way; nil when none
	attempts, failures int               // since pgquorum started
}

func (b *statusBoard) updateRejoin(fn func(*rejoinBoard)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	fn(&b.rejoin)
}

// rejoinView is the rejoin for epoch, if one is under way, and the
// counters.
func (b *statusBoard) rejoinView(epoch uint64) (*api.RejoinStatus, int, int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var s *api.RejoinStatus
	if b.rejoin.status != nil && b.rejoin.status.Epoch == epoch {
		c := *b.rejoin.status
		s = &c
	}
	return s, b.rejoin.attempts, b.rejoin.failures
}

// rejoinText is the reason of the Rejoining state: "[rewinding: forked
// off …; ]attempt N, last error …, next attempt in …".
func rejoinText(s *api.RejoinStatus, now time.Time) string {
	text := fmt.Sprintf("attempt %d", s.Attempt)
	if s.Reason != "" {
		text = s.Reason + "; " + text
	}
	if s.Running {
		text += " running"
	}
	if s.LastError != "" {
		text += ", last error: " + s.LastError
	}
	if s.Permanent {
		text += "; retrying cannot fix this: " + s.ManualStep
	}
	if s.NextAt != nil && !s.Running {
		text += fmt.Sprintf("; next attempt in %s", max(0, s.NextAt.Sub(now)).Round(time.Second))
	}
	return text
}

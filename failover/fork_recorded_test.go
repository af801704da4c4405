package failover

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/repmgr"
)

// From the adversarial review of the fork rewind: the fork was looked for
// only before the follow, so a standby that forked after it was never
// rewound.

// TestRecordedUpstreamButForkedIsRewound: s3 had received timeline 3 past
// s2's fork (complete records, not replayed yet: replay lag) and was
// restarted before the probe (service manager, operator, OOM): after a
// restart pg_last_wal_receive_lsn is NULL and replay has not yet reached
// the local WAL past the fork, so StandbyEnd ends before the fork and the
// follow runs. repmgr standby follow makes the same check with the same
// numbers, rewrites the configuration, restarts s3 and records s2 as its
// upstream; s3 then replays its own timeline 3 WAL past the fork and can
// never stream from s2. followAction returned "repmgr already records the
// committed primary as this standby's upstream" before any fork probe: s3
// was never rewound, though the probe then saw the fork.
func TestRecordedUpstreamButForkedIsRewound(t *testing.T) {
	s3 := actS3
	s3.UpstreamID = intp(2) // recorded by repmgr standby follow
	all := []repmgr.Node{actP, actS2, s3}
	f := standbyFacts("", all...) // its receiver does not stream
	o := Options{Self: "s3", Mode: api.ModePgquorum, AutoRejoin: true}
	got := decideAll(o, f, chose(actS2, true), actorMemory{},
		answers{timelines: tl4, end: repmgr.StandbyEnd{Timeline: 3, End: 0x70BD000}})
	if last := got[len(got)-1]; !strings.HasPrefix(last, "rejoin 2 s2") {
		t.Errorf("a standby recorded under s2 that does not stream and forked off s2 got %v, want it rewound", got)
	}
}

// TestRecordedUpstream: a standby repmgr records under the committed
// primary is looked at for a fork only when it does not stream the newest
// timeline it knows of from it, and rewound only when forked; never the
// committed primary itself.
func TestRecordedUpstream(t *testing.T) {
	s3 := actS3
	s3.UpstreamID = intp(2)
	all := []repmgr.Node{actP, actS2, s3}
	auto := Options{Self: "s3", Mode: api.ModePgquorum, AutoRejoin: true}
	forked := answers{timelines: tl4, end: repmgr.StandbyEnd{Timeline: 3, End: 0x70BD000}}
	// The forked standby streams its timeline 3 from s2 up to the fork,
	// over and over; its receiver fetched s2's timeline 4 history file.
	oldTimeline := func() actorFacts {
		f := streamingTimeline(standbyFacts("s2", all...), 3)
		f.Facts.Server.Timeline = 4
		return f
	}
	tests := []struct {
		name  string
		opts  Options
		facts actorFacts
		state Replicated
		a     answers
		want  []string // each a prefix
	}{
		{name: "streaming the primary's timeline from it: nothing, and no lookup", opts: auto,
			facts: streamingTimeline(standbyFacts("s2", all...), 4), state: chose(actS2, true), a: forked,
			want: []string{"nothing: repmgr already records the committed primary as this standby's upstream"}},
		{name: "not streaming, forked: rewound", opts: auto, facts: standbyFacts("", all...), state: chose(actS2, true), a: forked,
			want: []string{"timelines s2", "rejoin 2 s2"}},
		{name: "streaming its old timeline from the primary, forked: rewound", opts: auto, facts: oldTimeline(), state: chose(actS2, true), a: forked,
			want: []string{"timelines s2", "rejoin 2 s2"}},
		{name: "streaming from another node, forked: rewound", opts: auto,
			facts: streamingTimeline(standbyFacts("p", all...), 3), state: chose(actS2, true), a: forked,
			want: []string{"timelines s2", "rejoin 2 s2"}},
		{name: "streaming its old timeline from the primary, before the fork (catching up): nothing", opts: auto, facts: oldTimeline(),
			state: chose(actS2, true), a: answers{timelines: tl4, end: repmgr.StandbyEnd{Timeline: 3, End: 0x70B0000}},
			want: []string{"timelines s2", "nothing: repmgr already records the committed primary as this standby's upstream, and no fork"}},
		{name: "not streaming, on the primary's timeline (its primary restarting): nothing", opts: auto, facts: standbyFacts("", all...),
			state: chose(actS2, true), a: answers{timelines: tl4, end: repmgr.StandbyEnd{Timeline: 4, End: 0x9000000}},
			want: []string{"timelines s2", "nothing: repmgr already records"}},
		{name: "not streaming, the primary does not answer: nothing", opts: auto, facts: standbyFacts("", all...),
			state: chose(actS2, true), a: answers{forkErr: errors.New("connection refused")},
			want: []string{"timelines s2", "nothing: repmgr already records"}},
		{name: "forked, without auto_rejoin: left to the operator", opts: Options{Self: "s3", Mode: api.ModePgquorum},
			facts: standbyFacts("", all...), state: chose(actS2, true), a: forked,
			want: []string{"timelines s2", "nothing: cannot follow s2, forked off s2's timeline 4 at 0/70BC648"}},
		{name: "the committed primary itself is never rewound", opts: Options{Self: "s2", Mode: api.ModePgquorum, AutoRejoin: true},
			facts: func() actorFacts { f := standbyFacts("", all...); f.Facts.InRecovery = false; return f }(), state: chose(actS2, true), a: forked,
			want: []string{"nothing: runs as primary"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := decideAll(tt.opts, tt.facts, tt.state, actorMemory{}, tt.a)
			if !matches(got, tt.want) {
				t.Fatalf("step:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(tt.want, "\n  "))
			}
		})
	}
}

// TestForkLookupOfADeadPrimaryEndsWithANewerDecision: s2, recorded under
// p, does not stream (p's host just died, and keeps the connection open),
// so its actor looks p's timelines up; meanwhile s2 is chosen. The lookup
// is ended by the newer decision, not by failover.command_timeout, and the
// next step promotes s2.
func TestForkLookupOfADeadPrimaryEndsWithANewerDecision(t *testing.T) {
	actions := &fakeActions{}
	c := newShells(t, shellOpts("s2"), localAs(""), actions, &fakeReporters{}, promotedState())
	var cause error
	actions.lookup = func(ctx context.Context, node string) error {
		if node == "p" && cause == nil {
			commitDirectly(t, c, decisionEntry(api.Decision{Epoch: 2, Primary: "s2", PrimaryID: 2, OldPrimary: "p", At: t0}))
			<-ctx.Done()
			cause = context.Cause(ctx)
			return cause
		}
		return nil
	}
	c.act.step(context.Background())
	if cause == nil || !strings.Contains(cause.Error(), "superseded by epoch 2") {
		t.Fatalf("the lookup of p ended with %v, want it ended by the newer decision", cause)
	}
	if got := actions.called(); len(got) != 0 {
		t.Fatalf("the step whose lookup a newer decision ended ran %q, want nothing", got)
	}
	c.act.step(context.Background())
	if got := actions.called(); !reflect.DeepEqual(got, []string{"promote 2"}) {
		t.Errorf("the next step ran %q, want the promotion", got)
	}
}

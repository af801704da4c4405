package failover

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/repmgr"
)

// promotedState is the replicated state where p is the promoted primary of
// epoch 1.
func promotedState() Replicated {
	at := t0
	return Replicated{Epoch: 1, Primary: "p", PrimaryID: 1,
		History: []api.Decision{{Epoch: 1, Primary: "p", PrimaryID: 1, At: t0, PromotedAt: &at}}}
}

// switchoverReports are the reports of a healthy cluster: p the confirmed
// primary at LSN 1000 on timeline 1, s2 and s3 streaming from it.
func switchoverReports() map[string]*api.Report {
	p := &api.Report{Node: "p", NodeID: 1, Type: repmgr.TypePrimary, State: api.StatePrimary, DBUp: true, Timeline: 1, ReceivedLSN: 1000}
	s2 := edited(standby(electS2, 1, 900), func(r *api.Report) { r.Upstream, r.Receiver = "p", repmgr.StreamingState })
	s3 := edited(standby(electS3, 1, 1000), func(r *api.Report) { r.Upstream, r.Receiver = "p", repmgr.StreamingState })
	return map[string]*api.Report{"p": p, "s2": s2, "s3": s3}
}

func TestCheckSwitchover(t *testing.T) {
	nodes := []repmgr.Node{lostP, electS2, electS3, electW6}
	tests := []struct {
		name    string
		to      string
		state   func(*Replicated)
		reports func(map[string]*api.Report)
		maxLag  int64
		lag     int64
		err     string // a part of the refusal; "" to start
	}{
		{name: "a streaming standby within the lag starts", to: "s2", maxLag: 100, lag: 100},
		{name: "a standby further behind than switchover_max_lag is refused", to: "s2", maxLag: 99, lag: 100, err: "100 bytes behind p, more than failover.switchover_max_lag (99)"},
		{name: "an unknown node is refused", to: "nope", maxLag: 1 << 20, err: `"nope" is not registered`},
		{name: "a witness is refused", to: "w6", maxLag: 1 << 20, err: "registered as a witness"},
		{name: "the primary itself is refused", to: "p", maxLag: 1 << 20, err: "p is the primary already"},
		{name: "during a failover (not promoted yet) it is refused", to: "s2", maxLag: 1 << 20,
			state: func(r *Replicated) { r.History[0].PromotedAt, r.History[0].OldPrimary = nil, "x" }, err: "a failover is in progress"},
		{name: "from an adopted primary, not promoted by pgquorum, it starts", to: "s2", maxLag: 1 << 20, lag: 100,
			state: func(r *Replicated) { r.History[0].PromotedAt = nil }},
		{name: "during another switchover it is refused", to: "s2", maxLag: 1 << 20,
			state: func(r *Replicated) {
				r.Switchovers = []api.Switchover{{ID: 1, From: "p", To: "s3", Phase: api.PhaseDemoting}}
			}, err: "a switchover from p to s3 is in progress"},
		{name: "before any decision it is refused", to: "s2", maxLag: 1 << 20,
			state: func(r *Replicated) { *r = Replicated{} }, err: "no primary is committed"},
		{name: "a target that streams from another node is refused", to: "s2", maxLag: 1 << 20,
			reports: func(m map[string]*api.Report) { m["s2"].Upstream = "s3" }, err: "does not stream from p"},
		{name: "a target whose receiver is not streaming is refused", to: "s2", maxLag: 1 << 20,
			reports: func(m map[string]*api.Report) { m["s2"].Receiver = "waiting" }, err: "does not stream from p"},
		{name: "a target that did not answer is refused", to: "s2", maxLag: 1 << 20,
			reports: func(m map[string]*api.Report) { delete(m, "s2") }, err: "s2's pgquorum did not answer"},
		{name: "a target whose database is down is refused", to: "s2", maxLag: 1 << 20,
			reports: func(m map[string]*api.Report) { m["s2"].DBUp, m["s2"].DBError = false, "refused" }, err: "database is down"},
		{name: "a primary not confirmed (509) is refused", to: "s2", maxLag: 1 << 20,
			reports: func(m map[string]*api.Report) { m["p"].State = api.StateUnknown }, err: "the primary p is not confirmed"},
		{name: "a target on another timeline is refused", to: "s2", maxLag: 1 << 20,
			reports: func(m map[string]*api.Report) { m["s2"].Timeline = 2 }, err: "timeline 2"},
		{name: "an active repmgrd is refused", to: "s2", maxLag: 1 << 20,
			reports: func(m map[string]*api.Report) { m["s3"].RepmgrdRunning = true }, err: "repmgrd runs"},
		{name: "a paused repmgrd is fine", to: "s2", maxLag: 1 << 20, lag: 100,
			reports: func(m map[string]*api.Report) { m["s3"].RepmgrdRunning, m["s3"].RepmgrdPaused = true, true }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := promotedState()
			if tt.state != nil {
				tt.state(&st)
			}
			reports := switchoverReports()
			if tt.reports != nil {
				tt.reports(reports)
			}
			lag, err := CheckSwitchover(st, tt.to, nodes, reports, tt.maxLag)
			if tt.err == "" {
				if err != nil || lag != tt.lag {
					t.Fatalf("CheckSwitchover = %d, %v; want lag %d and no error", lag, err, tt.lag)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("CheckSwitchover error %v, want it to say %q", err, tt.err)
			}
		})
	}
}

func TestFenceReason(t *testing.T) {
	deposed := FenceView{Policy: api.FenceStop, Self: "p", DBUp: true, Registered: true, Ready: true, Primary: "s2", PrimaryRuns: true,
		Epoch: 3, FenceAfter: 10 * time.Second, Standbys: 2}
	// cutOff is the committed primary that has heard no coordinator for
	// fence_after: rule 2 turns on whether its standbys follow it.
	cutOff := func(v *FenceView) {
		v.Ready, v.Primary, v.PrimaryRuns, v.NotReadyFor = false, "p", false, 10*time.Second
	}
	tests := []struct {
		name string
		edit func(*FenceView)
		want string // a part of the reason; "" for no fence
	}{
		{name: "rule 1: a primary while another committed primary runs is fenced", want: "rule 1: runs as primary, but s2 is the committed primary of epoch 3"},
		{name: "not with failover.fence off", edit: func(v *FenceView) { v.Policy = api.FenceOff }},
		{name: "not while paused and hearing a coordinator", edit: func(v *FenceView) { v.Paused = true }},
		{name: "rule 2: a pause in the log of a node hearing no coordinator may be stale: it does not hold",
			edit: func(v *FenceView) {
				v.Paused, v.Ready, v.PrimaryRuns, v.NotReadyFor = true, false, false, 10*time.Second
			},
			want: "rule 2: no coordinator for 10s (failover.fence_after 10s), and s2 is the committed primary of epoch 3"},
		{name: "not a standby", edit: func(v *FenceView) { v.InRecovery = true }},
		{name: "not a stopped database", edit: func(v *FenceView) { v.DBUp = false }},
		{name: "not an unregistered node", edit: func(v *FenceView) { v.Registered = false }},
		{name: "not the committed primary hearing a coordinator, even followed by none", edit: func(v *FenceView) { v.Primary = "p" }},
		{name: "not before any decision", edit: func(v *FenceView) { v.Primary, v.Epoch = "", 0 }},
		{name: "rule 1 not on a stale view (no coordinator heard)", edit: func(v *FenceView) { v.Ready = false }},
		{name: "not while the committed primary does not answer, before the coordinator could adopt this node (a promotion outside pgquorum)",
			edit: func(v *FenceView) { v.PrimaryRuns, v.AdoptWithin, v.DeposedFor = false, 12*time.Second, 11*time.Second }},
		{name: "rule 1: the committed primary does not answer this node, and the coordinator has not adopted it",
			edit: func(v *FenceView) { v.PrimaryRuns, v.AdoptWithin, v.DeposedFor = false, 12*time.Second, 12*time.Second },
			want: "rule 1: runs as primary, but s2 is the committed primary of epoch 3, and has not adopted this node for 12s"},
		{name: "rule 1 not while stepping down for a switchover", edit: func(v *FenceView) { v.Demoting = true }},
		{name: "a command policy fences alike", edit: func(v *FenceView) { v.Policy = "/usr/local/bin/block-writes" }, want: "rule 1"},

		{name: "rule 2: no coordinator for fence_after, another node the committed primary",
			edit: func(v *FenceView) { v.Ready, v.PrimaryRuns, v.NotReadyFor = false, false, 10*time.Second },
			want: "rule 2: no coordinator for 10s (failover.fence_after 10s), and s2 is the committed primary of epoch 3"},
		{name: "rule 2: no coordinator for fence_after, the committed primary followed by no standby",
			edit: cutOff, want: "rule 2: no coordinator for 10s (failover.fence_after 10s), and only 0 of 2 standbys stream from it"},
		{name: "rule 2: one of two standbys is no majority",
			edit: func(v *FenceView) { cutOff(v); v.Live = 1 }, want: "only 1 of 2 standbys"},
		{name: "rule 2: a primary with no standby registered cannot show it was not replaced",
			edit: func(v *FenceView) { cutOff(v); v.Standbys = 0 }, want: "only 0 of 0 standbys"},
		{name: "rule 2 not short of fence_after",
			edit: func(v *FenceView) { cutOff(v); v.NotReadyFor = 9 * time.Second }},
		// pgquorum's outage is not the database's: the standbys' daemons
		// may all be down while their databases follow the primary.
		{name: "never the committed primary followed live by every standby, however long no coordinator is heard",
			edit: func(v *FenceView) { cutOff(v); v.Live, v.NotReadyFor = 2, time.Hour }},
		{name: "never the committed primary followed live by a majority of its standbys",
			edit: func(v *FenceView) { cutOff(v); v.Standbys, v.Live = 3, 2 }},
		// A cluster's first start: nothing was ever committed, so nothing
		// replaced this primary; its wait for a coordinator is no sign.
		{name: "never at epoch 0", edit: func(v *FenceView) { cutOff(v); v.Primary, v.Epoch, v.NotReadyFor = "", 0, time.Hour }},
		{name: "never during the quiet period after a start", edit: func(v *FenceView) { cutOff(v); v.Quiet, v.NotReadyFor = true, time.Hour }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := deposed
			if tt.edit != nil {
				tt.edit(&v)
			}
			got := FenceReason(v)
			if (tt.want == "") != (got == "") || !strings.Contains(got, tt.want) {
				t.Fatalf("FenceReason = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestFenceOutlook: pgquorum status says which rule would fire, and when;
// nothing when no rule is on its way.
func TestFenceOutlook(t *testing.T) {
	leading := FenceView{Policy: api.FenceStop, Self: "p", DBUp: true, Registered: true, Ready: true, Primary: "p",
		Epoch: 3, FenceAfter: 10 * time.Second, Standbys: 2, Live: 2}
	tests := []struct {
		name string
		edit func(*FenceView)
		want string // "" for none
	}{
		{name: "a healthy primary: nothing"},
		{name: "no coordinator, followed: none would fire", edit: func(v *FenceView) { v.Ready, v.NotReadyFor = false, 3*time.Second },
			want: "fence: none would fire: no coordinator for 3s, but 2 of 2 standbys stream from it"},
		{name: "no coordinator, not followed: rule 2 counts down", edit: func(v *FenceView) { v.Ready, v.NotReadyFor, v.Live = false, 3*time.Second, 1 },
			want: "fence: rule 2 would fire in 7s (no coordinator for 3s, and only 1 of 2 standbys stream from it (2 needed of 3 registered nodes))"},
		{name: "a coordinator, not followed: rule 2 is armed", edit: func(v *FenceView) { v.Live = 0 },
			want: "fence: rule 2 would fire 10s after the coordinator is lost (only 0 of 2 standbys stream from it (2 needed of 3 registered nodes))"},
		{name: "deposed, the committed primary not answering: rule 1 counts down",
			edit: func(v *FenceView) { v.Primary, v.AdoptWithin, v.DeposedFor = "s2", 8*time.Second, 4*time.Second },
			want: "fence: rule 1 would fire in 6s (s2 is the committed primary of epoch 3, and this node runs as primary)"},
		{name: "quiet: nothing", edit: func(v *FenceView) { v.Quiet, v.Ready, v.Live = true, false, 0 }},
		{name: "epoch 0: nothing", edit: func(v *FenceView) { v.Epoch, v.Ready, v.Live = 0, false, 0 }},
		{name: "a standby: nothing", edit: func(v *FenceView) { v.InRecovery, v.Ready = true, false }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := leading
			if tt.edit != nil {
				tt.edit(&v)
			}
			if got := FenceOutlook(v); got != tt.want {
				t.Fatalf("FenceOutlook = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestGate(t *testing.T) {
	at := t0
	chosen := api.Decision{Epoch: 2, Primary: "s2", OldPrimary: "p", Reason: "p lost"}
	tests := []struct {
		name           string
		view           GateView
		allowed, final bool
		why            string
	}{
		{name: "the committed successor is allowed", view: GateView{Mode: api.ModeRepmgrd, Self: "s2", Ready: true, HasAny: true, Latest: chosen},
			allowed: true, final: true, why: "s2 is the committed successor of p"},
		{name: "another standby is refused for good", view: GateView{Mode: api.ModeRepmgrd, Self: "s3", Ready: true, HasAny: true, Latest: chosen},
			final: true, why: "the raft group chose s2, not s3"},
		{name: "a second allowance is refused", view: GateView{Mode: api.ModeRepmgrd, Self: "s2", Ready: true, HasAny: true,
			Latest: func() api.Decision { d := chosen; d.AllowedAt = &at; return d }()}, final: true, why: "allowed to promote s2 for epoch 2 already"},
		{name: "once promoted, refused", view: GateView{Mode: api.ModeRepmgrd, Self: "s2", Ready: true, HasAny: true,
			Latest: func() api.Decision { d := chosen; d.PromotedAt = &at; return d }()}, final: true, why: "promoted already"},
		{name: "no decision yet: wait", view: GateView{Mode: api.ModeRepmgrd, Self: "s2", Ready: true, HasAny: true,
			Latest: api.Decision{Epoch: 1, Primary: "p", PromotedAt: &at}}, why: "p is the committed primary (epoch 1): a majority has not confirmed its loss"},
		{name: "no raft leader: wait", view: GateView{Mode: api.ModeRepmgrd, Self: "s2", HasAny: true, Latest: chosen}, why: "no raft leader"},
		{name: "in pgquorum mode, refused", view: GateView{Mode: api.ModePgquorum, Self: "s2", Ready: true, HasAny: true, Latest: chosen},
			final: true, why: "not repmgrd"},
		{name: "the adopted first primary has nothing to promote", view: GateView{Mode: api.ModeRepmgrd, Self: "p", Ready: true, HasAny: true,
			Latest: api.Decision{Epoch: 1, Primary: "p"}}, final: true, why: "nothing to promote"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			allowed, final, why := Gate(tt.view)
			if allowed != tt.allowed || final != tt.final || !strings.Contains(why, tt.why) {
				t.Fatalf("Gate = %v, %v, %q; want %v, %v, %q", allowed, final, why, tt.allowed, tt.final, tt.why)
			}
		})
	}
}

func promoted(epoch uint64) Entry {
	return Entry{Version: EntryVersion, Type: EntryPromoted, Promoted: &Promoted{Epoch: epoch, At: t0}}
}

func TestFSMOperatorEntries(t *testing.T) {
	start := api.Switchover{ID: 1, From: "n1", To: "n2", Phase: api.PhaseDemoting, Steps: []api.Step{{What: "checked"}}}
	step := func(phase api.SwitchoverPhase, what string) Entry {
		return switchoverEntry(api.Switchover{ID: 1, Phase: phase, Steps: []api.Step{{What: what}}})
	}
	base := []Entry{decision(1, "n1"), promoted(1)}
	failover := decision(2, "n2")
	failover.Decision.OldPrimary = "n1"
	tests := []struct {
		name    string
		base    []Entry // default: base
		entries []Entry // after base; the last one is checked
		refused string  // a part of the last entry's refusal; "" if applied
		check   func(t *testing.T, st Replicated)
	}{
		{name: "a pause is recorded, and a resume", entries: []Entry{
			{Version: EntryVersion, Type: EntryPause, Pause: &Pause{Paused: true, Reason: "upgrade", By: "n2"}},
		}, check: func(t *testing.T, st Replicated) {
			if !st.Paused() || st.Pause.Reason != "upgrade" {
				t.Fatalf("pause %+v", st.Pause)
			}
		}},
		{name: "resume", entries: []Entry{
			{Version: EntryVersion, Type: EntryPause, Pause: &Pause{Paused: true}},
			{Version: EntryVersion, Type: EntryPause, Pause: &Pause{Paused: false}},
		}, check: func(t *testing.T, st Replicated) {
			if st.Paused() {
				t.Fatal("still paused after resume")
			}
		}},
		{name: "a fence is recorded", entries: []Entry{{Version: EntryVersion, Type: EntryFence, Fence: &LogFence{Node: "n3", Reason: "509"}}},
			check: func(t *testing.T, st Replicated) {
				if len(st.Fences) != 1 || st.Fences[0].Node != "n3" {
					t.Fatalf("fences %+v", st.Fences)
				}
			}},
		{name: "a fence without a node is refused", entries: []Entry{{Version: EntryVersion, Type: EntryFence, Fence: &LogFence{}}}, refused: "without a node"},
		{name: "a switchover starts from the promoted primary", entries: []Entry{switchoverEntry(start)},
			check: func(t *testing.T, st Replicated) {
				if sw, ok := st.Switchover(); !ok || sw.Phase != api.PhaseDemoting {
					t.Fatalf("switchover %+v, %v", sw, ok)
				}
			}},
		{name: "not before the primary is promoted", base: []Entry{decision(1, "n1"), failover}, entries: []Entry{
			switchoverEntry(api.Switchover{ID: 2, From: "n2", To: "n1", Phase: api.PhaseDemoting})}, refused: "starts from the promoted primary"},
		{name: "from an adopted primary", base: []Entry{decision(1, "n1")}, entries: []Entry{switchoverEntry(start)}},
		{name: "not from another node than the primary", entries: []Entry{
			switchoverEntry(api.Switchover{ID: 1, From: "n3", To: "n2", Phase: api.PhaseDemoting})}, refused: "starts from the promoted primary"},
		{name: "not from a stale epoch", entries: []Entry{
			switchoverEntry(api.Switchover{ID: 0, From: "n1", To: "n2", Phase: api.PhaseDemoting})}, refused: "starts from the promoted primary"},
		{name: "not two at once", entries: []Entry{switchoverEntry(start),
			switchoverEntry(api.Switchover{ID: 2, From: "n1", To: "n3", Phase: api.PhaseDemoting})}, refused: "in progress"},
		{name: "steps are appended", entries: []Entry{switchoverEntry(start), step(api.PhaseDemoting, "stopped")},
			check: func(t *testing.T, st Replicated) {
				if sw, _ := st.Switchover(); len(sw.Steps) != 2 || sw.Steps[1].What != "stopped" {
					t.Fatalf("steps %+v", sw.Steps)
				}
			}},
		{name: "the decision for its target moves it to promoting", entries: []Entry{switchoverEntry(start), decision(2, "n2")},
			check: func(t *testing.T, st Replicated) {
				if sw, _ := st.Switchover(); sw.Phase != api.PhasePromoting || st.Primary != "n2" {
					t.Fatalf("switchover %+v, primary %s", sw, st.Primary)
				}
			}},
		{name: "a decision for another node aborts it", entries: []Entry{switchoverEntry(start), decision(2, "n3")},
			check: func(t *testing.T, st Replicated) {
				last := st.Switchovers[len(st.Switchovers)-1]
				if last.Phase != api.PhaseAborted || !strings.Contains(last.Error, "superseded") {
					t.Fatalf("switchover %+v", last)
				}
			}},
		{name: "demoting can be aborted", entries: []Entry{switchoverEntry(start), step(api.PhaseAborted, "aborted")},
			check: func(t *testing.T, st Replicated) {
				if _, running := st.Switchover(); running {
					t.Fatal("still running after abort")
				}
			}},
		{name: "demoting cannot be done without the decision", entries: []Entry{switchoverEntry(start), step(api.PhaseDone, "done")}, refused: "cannot go from demoting to done"},
		{name: "promoting cannot be aborted", entries: []Entry{switchoverEntry(start), decision(2, "n2"), step(api.PhaseAborted, "x")}, refused: "cannot go from promoting to aborted"},
		{name: "promoting ends done", entries: []Entry{switchoverEntry(start), decision(2, "n2"), promoted(2), step(api.PhaseDone, "n1 is a standby of n2")},
			check: func(t *testing.T, st Replicated) {
				last := st.Switchovers[len(st.Switchovers)-1]
				if last.Phase != api.PhaseDone || len(last.Steps) != 3 {
					t.Fatalf("switchover %+v", last)
				}
			}},
		{name: "repmgrd is allowed once per decision", entries: []Entry{failover,
			{Version: EntryVersion, Type: EntryAllow, Allow: &Promoted{Epoch: 2, At: t0}},
			{Version: EntryVersion, Type: EntryAllow, Allow: &Promoted{Epoch: 2, At: t0}}}, refused: "no promotion of epoch 2 to allow"},
		{name: "not for a past epoch", entries: []Entry{failover,
			{Version: EntryVersion, Type: EntryAllow, Allow: &Promoted{Epoch: 1, At: t0}}}, refused: "no promotion of epoch 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			first := base
			if tt.base != nil {
				first = tt.base
			}
			entries := append(append([]Entry(nil), first...), tt.entries...)
			f := NewFSM()
			var err error
			for i, e := range entries {
				e.Version = EntryVersion // as commit stamps it
				if err = apply(f, uint64(i+1), e.Encode()); err != nil && i < len(entries)-1 {
					t.Fatalf("entry %d: %v", i+1, err)
				}
			}
			switch {
			case tt.refused != "" && (err == nil || !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), tt.refused)):
				t.Fatalf("last entry: %v, want refused saying %q", err, tt.refused)
			case tt.refused == "" && err != nil:
				t.Fatalf("last entry refused: %v", err)
			}
			if tt.check != nil {
				tt.check(t, f.State())
			}
		})
	}
}

package tests

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/internal/lab"
)

// uiScreenshotEnv names where TestUIShowsAFailover copies its screenshot
// after the failover, for the docs: PGQUORUM_UI_SCREENSHOT=$PWD/docs/img/ui.png.
const uiScreenshotEnv = "PGQUORUM_UI_SCREENSHOT"

// TestUIShowsAFailover opens /ui in headless Chromium on a real three-node
// cluster failing over by itself: before, node1 is the confirmed and
// committed primary; after its postmaster is killed, the page shows node1
// Down and its successor Primary at epoch 2.
func TestUIShowsAFailover(t *testing.T) {
	t.Parallel()
	browser := chromium(t)
	c := startClusterWith(t, lab.Options{Nodes: threeNodes("dc1"), Quorum: withKeys(map[string]string{"cluster.name": "lab-dc1"}), OwnAddresses: true})
	waitSettled(t, c)
	if d := waitDecision(t, c, 1, settle); d.Primary != "node1" {
		t.Fatalf("epoch 1 adopted %s, want node1", d.Primary)
	}
	// node3's pgquorum answers throughout: node1's database is killed, and
	// node2 may be promoted.
	n3 := c.Node("node3")
	url := n3.QuorumURL() + api.PathUI
	dir := t.TempDir()
	before := []string{`<title>pgquorum · lab-dc1</title>`, `data-node="node1" data-state="Primary"`, `data-node="node2" data-state="Standby"`,
		`data-node="node3" data-state="Standby"`, `id="real-primary">node1<`, `id="epoch">1<`, `id="coordinator">node`}
	waitDOM(t, browser, dir, n3, url, "node1 the confirmed primary of epoch 1", func(b api.ClusterBody) bool {
		return b.RealPrimary != nil && *b.RealPrimary == "node1" && b.Failover != nil && b.Failover.Epoch == 1 && b.Failover.Coordinator != ""
	}, before...)
	screenshot(t, browser, dir, url, "before.png", before...)

	if err := c.Node("node1").KillPostmaster(); err != nil {
		t.Fatal(err)
	}
	d := waitDecision(t, c, 2, primaryBudget)
	if d.OldPrimary != "node1" {
		t.Fatalf("epoch 2 = %+v, want a node replacing node1", d)
	}
	waitState(t, c.Node(d.Primary), api.StatePrimary, primaryBudget)
	after := []string{`data-node="node1" data-state="Down"`, fmt.Sprintf(`data-node=%q data-state="Primary"`, d.Primary),
		fmt.Sprintf(`id="real-primary">%s<`, d.Primary), fmt.Sprintf(`id="committed-primary">%s<`, d.Primary), `id="epoch">2<`,
		`id="decisions"`, "Following", `id="coordinator">node`}
	waitDOM(t, browser, dir, n3, url, d.Primary+" the confirmed primary of epoch 2, node1 down", func(b api.ClusterBody) bool {
		return b.RealPrimary != nil && *b.RealPrimary == d.Primary && b.Failover != nil && b.Failover.Epoch == 2 && b.Failover.Coordinator != "" &&
			nodeState(b, "node1") == api.StateDown && slices.ContainsFunc(b.Nodes, func(n api.ClusterNode) bool { return n.Failover == api.FailoverFollowing })
	}, after...)
	shot := screenshot(t, browser, dir, url, "after.png", after...)
	checkMetrics(t, n3, `pgquorum_failover_epoch{cluster="lab-dc1"} 2`, `pgquorum_timeline{cluster="lab-dc1"} 2`,
		`pgquorum_failover_coordinator_present{cluster="lab-dc1"} 1`, `pgquorum_state{cluster="lab-dc1",state="Standby"} 1`)
	if dst := os.Getenv(uiScreenshotEnv); dst != "" {
		b, err := os.ReadFile(shot)
		if err == nil {
			err = os.WriteFile(dst, b, 0o644)
		}
		if err != nil {
			t.Fatalf("%s: %v", uiScreenshotEnv, err)
		}
		t.Logf("screenshot after the failover copied to %s", dst)
	}
}

// checkMetrics fails unless n's /metrics has every one of want, a series
// and its value as the text format writes them, and a time of the latest
// promotion.
func checkMetrics(t *testing.T, n *lab.Node, want ...string) {
	t.Helper()
	status, body, err := n.Get(context.Background(), api.PathMetrics)
	if err != nil || status != 200 {
		t.Fatalf("%s /metrics: %d %v", n.Name, status, err)
	}
	lines := strings.Split(string(body), "\n")
	for _, w := range want {
		if !slices.Contains(lines, w) {
			t.Errorf("%s /metrics lacks the line %q", n.Name, w)
		}
	}
	promoted := false
	for _, l := range lines {
		promoted = promoted || strings.HasPrefix(l, `pgquorum_failover_last_promotion_timestamp_seconds{cluster="lab-dc1"} 1.`)
	}
	if !promoted {
		t.Errorf("%s /metrics: no time of the latest promotion", n.Name)
	}
}

func nodeState(b api.ClusterBody, name string) api.State {
	for _, n := range b.Nodes {
		if n.Name == name {
			return n.State
		}
	}
	return ""
}

// chromium is the headless browser's path; the test is skipped, saying
// why, where none is installed (scripts/install-deps.sh installs it).
func chromium(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: needs PostgreSQL 15, repmgr, Chromium and root (run scripts/test.sh)")
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("chromium missing: apt-get install chromium (scripts/install-deps.sh) to screenshot /ui")
	return ""
}

// browse runs headless Chromium on url with more flags, in its own
// profile, bounded; it returns what it printed on stdout.
func browse(ctx context.Context, browser, dir, url string, flags ...string) (string, error) {
	profile, err := os.MkdirTemp(dir, "profile-")
	if err != nil {
		return "", err
	}
	defer func() { _ = os.RemoveAll(profile) }() // a temporary browser profile
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	args := append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
		"--user-data-dir=" + profile, "--window-size=1280,900"}, flags...)
	// At the lowest priority, so that the browser does not starve the
	// cluster it looks at (a 250 ms refresh, Raft at 500 ms) of the CPU;
	// in a process group of its own, for its renderers to go with it.
	cmd := exec.CommandContext(ctx, "nice", append([]string{"-n", "19", browser}, append(args, url)...)...)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("chromium %s: %w: %s", url, err, lastLines(stderr.String(), 5))
	}
	return string(out), nil
}

// waitDOM waits until node's /cluster shows what (polled as JSON, within
// the views' rate limit: cheaper than a browser), then checks that the DOM
// Chromium renders of url holds every one of want. The page is rendered
// again a few times should the cluster move between the two.
func waitDOM(t *testing.T, browser, dir string, n *lab.Node, url, what string, shows func(api.ClusterBody) bool, want ...string) {
	t.Helper()
	deadline := time.Now().Add(settle + primaryBudget)
	var last api.ClusterBody
	for {
		var b api.ClusterBody
		status, err := n.GetJSON(context.Background(), api.PathCluster, &b)
		if err == nil && status == 200 {
			if last = b; shows(b) {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("/cluster of %s never showed %s; last: %+v (error %v)", n.Name, what, last, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
	for range 3 {
		missing, dom := domLacks(t, browser, dir, url, want)
		if len(missing) == 0 {
			t.Logf("/ui shows %s", what)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("/ui of %s lacks %q; DOM:\n%s", what, missing, dom)
		}
		time.Sleep(time.Second)
	}
	t.Fatalf("/ui never showed %s", what)
}

// domLacks renders url and returns which of want its DOM lacks.
func domLacks(t *testing.T, browser, dir, url string, want []string) (missing []string, dom string) {
	t.Helper()
	dom, err := browse(context.Background(), browser, dir, url, "--dump-dom")
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range want {
		if !strings.Contains(dom, w) {
			missing = append(missing, w)
		}
	}
	return missing, dom
}

// screenshot saves Chromium's screenshot of url as name in dir and
// returns its path. The DOM rendered right after must still hold want, or
// the screenshot is taken again: it shows what the test checked.
func screenshot(t *testing.T, browser, dir, url, name string, want ...string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	for i := range 3 {
		if _, err := browse(context.Background(), browser, dir, url, "--screenshot="+path); err != nil {
			t.Fatal(err)
		}
		missing, _ := domLacks(t, browser, dir, url, want)
		if len(missing) == 0 {
			break
		}
		t.Logf("screenshot %d of %s: the page moved on (now lacks %q); again", i+1, name, missing)
		time.Sleep(time.Second)
	}
	st, err := os.Stat(path)
	if err != nil || st.Size() < 10<<10 {
		t.Fatalf("screenshot %s: %v (%d bytes): too small for a rendered page", path, err, sizeOf(st))
	}
	t.Logf("screenshot of /ui: %s (%d kB)", path, st.Size()>>10)
	return path
}

func sizeOf(st os.FileInfo) int64 {
	if st == nil {
		return 0
	}
	return st.Size()
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

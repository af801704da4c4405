package config

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/spf13/viper"
)

// configDoc is the configuration reference. Its tables of keys and of
// profiles are generated from Keys and Profiles between marker comments;
// everything around them is written by hand.
const configDoc = "../docs/configuration.md"

var update = flag.Bool("update", false, "rewrite the generated tables of docs/configuration.md from Keys and Profiles")

// generated names each generated block of configDoc and what fills it.
var generated = []struct {
	name string
	gen  func() string
}{
	{"keys", keyTable},
	{"profiles", profileTable},
}

// TestConfigurationDocIsGenerated keeps docs/configuration.md's tables
// equal to what Keys and Profiles say: a key documented but never read, read
// but undocumented, or documented with another default, fails here.
// "make docs" (go test ./config -run TestConfigurationDocIsGenerated -update)
// rewrites them.
func TestConfigurationDocIsGenerated(t *testing.T) {
	raw, err := os.ReadFile(configDoc)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	want := doc
	for _, g := range generated {
		if want, err = replaceBlock(want, g.name, g.gen()); err != nil {
			t.Fatalf("docs/configuration.md: %v", err)
		}
	}
	if *update {
		if want != doc {
			if err := os.WriteFile(configDoc, []byte(want), 0o644); err != nil {
				t.Fatal(err)
			}
			t.Logf("rewrote the generated tables of %s", configDoc)
		}
		return
	}
	if want != doc {
		t.Errorf("docs/configuration.md's generated tables differ from config.Keys and config.Profiles; "+
			"run make docs (go test ./config -run TestConfigurationDocIsGenerated -update). First difference:\n%s",
			firstDifference(doc, want))
	}
}

func beginMarker(name string) string {
	return fmt.Sprintf("<!-- generated: %s (from config/keys.go by make docs; do not edit) -->\n", name)
}

func endMarker(name string) string { return fmt.Sprintf("<!-- end generated: %s -->\n", name) }

// replaceBlock puts content between the begin and end markers of name.
func replaceBlock(doc, name, content string) (string, error) {
	begin, end := beginMarker(name), endMarker(name)
	before, rest, ok := strings.Cut(doc, begin)
	if !ok {
		return "", fmt.Errorf("no line %q", strings.TrimSpace(begin))
	}
	_, after, ok := strings.Cut(rest, end)
	if !ok {
		return "", fmt.Errorf("no line %q after %q", strings.TrimSpace(end), strings.TrimSpace(begin))
	}
	return before + begin + content + end + after, nil
}

// keyTable is one row per key, in the order of Keys. A default written in
// the flag help as "(default: …)" moves to the Default column.
func keyTable() string {
	var b strings.Builder
	b.WriteString("| Key | Default | Meaning |\n|---|---|---|\n")
	for _, k := range Keys {
		meaning, def := splitDefault(k.usage)
		if def == "" {
			def = defaultText(k)
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s |\n", k.name, def, cell(meaning))
	}
	return b.String()
}

var usageDefault = regexp.MustCompile(`^(.*) \(default: (.*)\)$`)

func splitDefault(usage string) (meaning, def string) {
	m := usageDefault.FindStringSubmatch(usage)
	if m == nil {
		return usage, ""
	}
	def = m[2]
	if strings.ContainsAny(def, "<>") {
		// A command line with placeholders: as code, so that no <word> is
		// taken for an HTML tag.
		return m[1], "`" + strings.ReplaceAll(def, "|", `\|`) + "`"
	}
	return m[1], cell(def)
}

func defaultText(k Key) string {
	switch d := k.def.(type) {
	case nil:
		return fmt.Sprintf("profile: `%s` (fast: `%s`)", Profiles["default"][k.name], Profiles["fast"][k.name])
	case map[string]string:
		if len(d) == 0 {
			return "empty"
		}
	case string:
		if d == "" {
			return "empty"
		}
	}
	return fmt.Sprintf("`%v`", k.def)
}

// cell keeps text inside one Markdown table cell.
func cell(s string) string {
	return strings.NewReplacer("|", `\|`, "<", `\<`, ">", `\>`).Replace(s)
}

// profileTable is one row per key that takes its default from the profile.
func profileTable() string {
	var b strings.Builder
	b.WriteString("| Key | `default` | `fast` |\n|---|---|---|\n")
	for _, k := range Keys {
		if k.def != nil {
			continue
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s |\n", k.name, Profiles["default"][k.name], Profiles["fast"][k.name])
	}
	return b.String()
}

func firstDifference(have, want string) string {
	h, w := strings.Split(have, "\n"), strings.Split(want, "\n")
	for i := 0; i < len(h) || i < len(w); i++ {
		var hl, wl string
		if i < len(h) {
			hl = h[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if hl != wl {
			return fmt.Sprintf("line %d\n  is:        %s\n  generated: %s", i+1, hl, wl)
		}
	}
	return "(none)"
}

// TestProfilesNameOnlyProfileKeys: every key a profile sets takes its
// default from the profile, so the generated tables agree with each other.
func TestProfilesNameOnlyProfileKeys(t *testing.T) {
	var fromProfile []string
	for _, k := range Keys {
		if k.def == nil {
			fromProfile = append(fromProfile, k.name)
		}
	}
	sort.Strings(fromProfile)
	for name, p := range Profiles {
		var keys []string
		for k := range p {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		if !slices.Equal(keys, fromProfile) {
			t.Errorf("profile %s sets %v; the keys without a default of their own are %v", name, keys, fromProfile)
		}
	}
}

// repmgrObjects are repmgr's own names (its schema, its config file) that
// read like keys.
var repmgrObjects = []string{"repmgr.conf", "repmgr.nodes", "repmgr.events", "repmgr.repmgrd_is_running", "repmgr.repmgrd_is_paused"}

// TestDocsNameOnlyRealKeys: every key the README and docs/ name in code
// quotes is one the code reads (or a section of such keys), so that no page
// tells operators to set a key that would be refused.
func TestDocsNameOnlyRealKeys(t *testing.T) {
	pages, err := filepath.Glob("../docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	pages = append(pages, "../README.md")
	named := regexp.MustCompile("`((?:node|server|database|repmgr|consensus|failover|hooks|log)\\.[a-z_.]*[a-z_])")
	for _, page := range pages {
		text, err := os.ReadFile(page)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range named.FindAllStringSubmatch(string(text), -1) {
			name := m[1]
			if KnownKey(name) || slices.Contains(repmgrObjects, name) || isSection(name) {
				continue
			}
			t.Errorf("%s names %s, which is no configuration key", strings.TrimPrefix(page, "../"), name)
		}
	}
}

func isSection(name string) bool {
	return slices.ContainsFunc(Keys, func(k Key) bool { return strings.HasPrefix(k.name, name+".") })
}

// TestExampleConfigSetsEveryKey keeps scripts/pgquorum.example.yaml true to
// the keys the code reads: a key set there but never read, or read but
// missing there, fails here.
func TestExampleConfigSetsEveryKey(t *testing.T) {
	want := make([]string, 0, len(Keys))
	for _, k := range Keys {
		want = append(want, k.name)
	}
	sort.Strings(want)

	v := viper.New()
	v.SetConfigFile("../scripts/pgquorum.example.yaml")
	if err := v.ReadInConfig(); err != nil {
		t.Fatal(err)
	}
	// Walk the file's sections rather than AllKeys: an empty map such as
	// "peers: {}" is a documented key that AllKeys would not list.
	sections := map[string]bool{}
	for _, k := range Keys {
		sec, _, _ := strings.Cut(k.name, ".")
		sections[sec] = true
	}
	var example []string
	// Nested sections (consensus.peer_tls) are walked down to their keys;
	// the maps of node names (consensus.peers) are keys themselves.
	var walk func(prefix string, m map[string]any)
	walk = func(prefix string, m map[string]any) {
		for name, val := range m {
			key := prefix + "." + name
			if sub, ok := val.(map[string]any); ok && !slices.Contains(mapKeys, key) {
				walk(key, sub)
				continue
			}
			example = append(example, key)
		}
	}
	for sec := range sections {
		walk(sec, v.GetStringMap(sec))
	}
	for _, top := range v.AllKeys() {
		if !KnownKey(top) {
			example = append(example, top)
		}
	}
	sort.Strings(example)
	if strings.Join(example, " ") != strings.Join(want, " ") {
		t.Errorf("scripts/pgquorum.example.yaml sets\n  %v\nthe code reads\n  %v", example, want)
	}
}

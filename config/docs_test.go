package config

import (
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/spf13/viper"
)

// TestDocsNameEveryConfigKey keeps the README's configuration table and the
// example config true to the keys the code reads: a key documented but never
// read, or read but undocumented, fails here.
func TestDocsNameEveryConfigKey(t *testing.T) {
	want := make([]string, 0, len(Keys))
	for _, k := range Keys {
		want = append(want, k.name)
	}
	sort.Strings(want)

	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	// The table of the "## Configuration" section, not the other tables
	// that mention keys.
	_, section, _ := strings.Cut(string(readme), "\n## Configuration\n")
	section, _, _ = strings.Cut(section, "\n## ")
	row := regexp.MustCompile("(?m)^\\| `([a-z_]+(?:\\.[a-z_]+)+)` \\|")
	var inTable []string
	for _, m := range row.FindAllStringSubmatch(section, -1) {
		inTable = append(inTable, m[1])
	}
	sort.Strings(inTable)
	if strings.Join(inTable, " ") != strings.Join(want, " ") {
		t.Errorf("README configuration table lists\n  %v\nthe code reads\n  %v", inTable, want)
	}

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

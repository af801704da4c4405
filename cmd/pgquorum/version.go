package main

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/pgquorum/pgquorum/internal/buildinfo"
)

// versionText is what both `pgquorum --version` and `pgquorum version` print.
func versionText(i buildinfo.Info) string {
	commit := i.Revision
	if i.Modified {
		commit += " (modified)"
	}
	return fmt.Sprintf("pgquorum %s\ncommit:  %s\nbuilt:   %s\ngo:      %s\n", i.Version, commit, i.Date, i.GoVersion)
}

func newVersionCmd(stdout io.Writer, info buildinfo.Info) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version, commit, build date and Go version",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if !asJSON {
				_, err := io.WriteString(stdout, versionText(info))
				return err
			}
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(info)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON: version, revision, date, modified, goversion")
	return cmd
}

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"nslab/server/store"
)

const defaultDB = "/var/lib/nslab/labd.db"

const tokenUsage = `Usage:
  labd token create --role admin|instructor|learner --subject NAME [--workshop ID] [-q] [--db PATH]
  labd token list [--workshop ID] [--db PATH]
  labd token revoke ID [--db PATH]

Bearer tokens for labd's TCP listener (--listen), stored hashed in labd's
database: the secret is printed once, by create, and cannot be shown again.
These commands work on the database directly, also while labd runs.
`

// tokenCommand runs "labd token ARGS" and returns the exit code: 0 done,
// 1 failed, 2 usage error.
func tokenCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	usage := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "labd token: "+format+"\n\n%s", append(a, tokenUsage)...)
		return 2
	}
	if len(args) == 0 {
		return usage("want create, list or revoke")
	}
	verb, args := args[0], args[1:]
	if verb == "-h" || verb == "--help" || verb == "help" {
		fmt.Fprint(stdout, tokenUsage)
		return 0
	}
	fs := flag.NewFlagSet("labd token "+verb, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	db := fs.String("db", defaultDB, "labd's database")
	var role, subject, workshop string
	var quiet bool
	switch verb {
	case "create":
		fs.StringVar(&role, "role", "", "admin, instructor or learner")
		fs.StringVar(&subject, "subject", "", "who holds the token; sandboxes it creates are owned by this name")
		fs.StringVar(&workshop, "workshop", "", "the workshop the token belongs to")
		fs.BoolVar(&quiet, "q", false, "print only the secret")
	case "list":
		fs.StringVar(&workshop, "workshop", "", "only this workshop's tokens")
	case "revoke":
	default:
		return usage("unknown command %q: want create, list or revoke", verb)
	}
	pos, err := parseMixed(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, tokenUsage)
		return 0
	}
	if err != nil {
		return usage("%s: %v", verb, err)
	}
	switch {
	case verb == "revoke" && len(pos) != 1:
		return usage("revoke: want one token id (labd token list shows them)")
	case verb != "revoke" && len(pos) > 0:
		return usage("%s: unexpected argument %q", verb, pos[0])
	case verb == "create" && role == "":
		return usage("create: --role is required")
	case verb == "create" && subject == "":
		return usage("create: --subject is required")
	}
	if verb != "create" {
		// Reading or revoking needs labd's database, not a new empty one.
		if _, err := os.Stat(*db); err != nil {
			fmt.Fprintf(stderr, "labd token %s: database %s: %v (--db)\n", verb, *db, err)
			return 1
		}
	}
	st, err := store.Open(ctx, *db)
	if err != nil {
		fmt.Fprintf(stderr, "labd token %s: %v\n", verb, err)
		return 1
	}
	defer st.Close()
	if err := runToken(ctx, st, verb, pos, role, subject, workshop, quiet, stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "labd token %s: %v\n", verb, err)
		return 1
	}
	return 0
}

func runToken(ctx context.Context, st *store.Store, verb string, pos []string, role, subject, workshop string, quiet bool, stdout, stderr io.Writer) error {
	switch verb {
	case "create":
		secret, t, err := st.CreateToken(ctx, role, subject, workshop)
		if err != nil {
			return err
		}
		if quiet {
			fmt.Fprintln(stdout, secret)
			return nil
		}
		fmt.Fprintf(stdout, "id:       %s\nrole:     %s\nsubject:  %s\nworkshop: %s\nsecret:   %s\n",
			t.ID, t.Role, t.Subject, orDash(t.Workshop), secret)
		fmt.Fprintln(stderr, "The secret is shown only now: labd keeps a hash of it. Clients send it as \"authorization: Bearer <secret>\" (labctl --token or $NSLAB_TOKEN).")
	case "list":
		ts, err := st.ListTokens(ctx, workshop)
		if err != nil {
			return err
		}
		w := tabwriter.NewWriter(stdout, 0, 8, 2, ' ', 0)
		fmt.Fprintln(w, "ID\tROLE\tSUBJECT\tWORKSHOP\tCREATED\tREVOKED")
		for _, t := range ts {
			revoked := "-"
			if !t.Revoked.IsZero() {
				revoked = t.Revoked.Local().Format(time.DateTime)
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.Role, t.Subject, orDash(t.Workshop), t.Created.Local().Format(time.DateTime), revoked)
		}
		return w.Flush()
	case "revoke":
		t, err := st.RevokeToken(ctx, pos[0])
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "token %s (%s %s) revoked at %s\n", t.ID, t.Role, t.Subject, t.Revoked.Local().Format(time.DateTime))
	}
	return nil
}

// parseMixed parses flags before, between and after positional arguments.
func parseMixed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos, args = append(pos, args[0]), args[1:]
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

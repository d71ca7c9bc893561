package main

import (
	"bufio"
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/durationpb"

	labsv1 "nslab/proto/labs/v1"
)

// workshopCommand is "labctl workshop create|ls|show|watch|report|delete":
// an instructor's view of a class running one lab.
func (c *cli) workshopCommand() *cobra.Command {
	ws := &cobra.Command{
		Use:   "workshop create|ls|show|watch|report|delete ...",
		Short: "run a lab for a class of learners",
		Long: "A workshop is one lab run for a roster of learners: each gets a token and\n" +
			"a sandbox; their grades can be watched live and exported at the end.",
		Example: "  labctl workshop create routed --learners ann,bob --provision\n" +
			"  labctl workshop watch w-3f9a1c\n" +
			"  labctl workshop report -o csv w-3f9a1c > grades.csv",
		Annotations: map[string]string{listChildrenOnly: "yes"},
		Args: func(cmd *cobra.Command, args []string) error {
			want := "create, ls, show, watch, report or delete"
			if len(args) == 0 {
				return usagef(cmd, "want %s", want)
			}
			return usagef(cmd, "want %s, not %q", want, args[0])
		},
		RunE: func(*cobra.Command, []string) error { return nil },
	}
	ws.AddCommand(c.workshopCreateCommand(), c.workshopLsCommand(), c.workshopShowCommand(),
		c.workshopWatchCommand(), c.workshopReportCommand(), c.workshopDeleteCommand())
	return ws
}

func (c *cli) workshopClient() (labsv1.WorkshopServiceClient, error) {
	conn, err := c.connect()
	if err != nil {
		return nil, err
	}
	return labsv1.NewWorkshopServiceClient(conn), nil
}

func (c *cli) workshopCreateCommand() *cobra.Command {
	var (
		learners  []string
		rosterArg string
		provision bool
		ttl       time.Duration
		format    string
	)
	cmd := &cobra.Command{
		Use:   "create [flags] LAB",
		Short: "create a workshop for --learners or a --roster; prints tokens",
		Long: "Creates a workshop of LAB for a roster of learner names (1 to 500, each\n" +
			"1-64 bytes of a-z, 0-9, '.', '_' and '-'). labd makes a token for every\n" +
			"learner and one for the instructor, and prints them: they are shown only\n" +
			"now. With --provision every learner's sandbox is built before it returns;\n" +
			"otherwise each is built on demand. A roster FILE has one name per line;\n" +
			"blank lines and lines starting with # are skipped; - reads stdin.\n\n" +
			"Exits 1 when any learner's sandbox could not be built (the workshop and\n" +
			"the others' sandboxes are kept; `labctl workshop show` says why).",
		Example: "  labctl workshop create routed --learners ann,bob,cy\n" +
			"  labctl workshop create routed --roster class.txt --provision -o csv > tokens.csv",
		Args:              exactArgs(1, "exactly one LAB"),
		ValidArgsFunction: c.completeLabs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if !slices.Contains([]string{"table", "json", "csv"}, format) {
				return usagef(cmd, "unknown output format %q (want table, json or csv)", format)
			}
			if ttl < 0 || (cmd.Flags().Changed("ttl") && ttl == 0) {
				return usagef(cmd, "--ttl must be positive")
			}
			switch {
			case len(learners) > 0 && rosterArg != "":
				return usagef(cmd, "--learners and --roster exclude each other")
			case rosterArg != "":
				var err error
				if learners, err = readRoster(rosterArg, c.stdin); err != nil {
					return err
				}
			case len(learners) == 0:
				return usagef(cmd, "want the roster: --learners A,B,... or --roster FILE")
			}
			req := &labsv1.CreateWorkshopRequest{Lab: args[0], Learners: learners, Provision: provision}
			if ttl > 0 {
				req.Ttl = durationpb.New(ttl)
			}
			// Building a whole class takes a while: unless --timeout was
			// given, the call is not cut off.
			bounded := cmd.Root().PersistentFlags().Changed("timeout") || !provision
			return c.workshopCreate(cmd.Context(), req, format, bounded)
		},
	}
	fs := cmd.Flags()
	fs.StringSliceVar(&learners, "learners", nil, "the roster: comma-separated learner `NAMES`")
	fs.StringVar(&rosterArg, "roster", "", "read the roster from `FILE`, one name per line (- for stdin)")
	fs.BoolVar(&provision, "provision", false, "build every learner's sandbox now")
	fs.DurationVar(&ttl, "ttl", 0, "each sandbox's lifetime (default: labd's --ttl)")
	fs.StringVarP(&format, "output", "o", "table", "output format: table, json or csv")
	return cmd
}

// readRoster reads one learner name per line from path ("-": stdin).
func readRoster(path string, stdin io.Reader) ([]string, error) {
	r := stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("read roster: %w", err)
		}
		defer f.Close()
		r = f
	}
	var names []string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		names = append(names, line)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read roster %s: %w", path, err)
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("read roster %s: no learner names in it", path)
	}
	return names, nil
}

func (c *cli) workshopCreate(ctx context.Context, req *labsv1.CreateWorkshopRequest, format string, bounded bool) error {
	client, err := c.workshopClient()
	if err != nil {
		return err
	}
	var spin *spinner
	if req.GetProvision() && c.cfg.terminal(c.stderr) {
		spin = startSpinner(c.stderr, fmt.Sprintf("creating a workshop of %s and %s", lastSegment(req.GetLab()), sandboxes(len(req.GetLearners()))), c.cfg.now)
	}
	cctx, cancel := context.WithCancel(ctx)
	if bounded {
		cctx, cancel = c.unary(ctx)
	}
	defer cancel()
	resp, err := client.CreateWorkshop(cctx, req)
	if spin != nil {
		spin.end()
	}
	if err != nil {
		return rpcError("create workshop of "+req.GetLab(), err).on(subject{lab: req.GetLab()})
	}
	ws := resp.GetWorkshop()
	secrets := map[string]string{}
	for _, t := range resp.GetLearnerTokens() {
		secrets[t.GetLearner()] = t.GetSecret()
	}
	switch format {
	case "json":
		err = c.printJSON(resp)
	case "csv":
		w := csv.NewWriter(c.stdout)
		w.Write([]string{"role", "learner", "token", "sandbox", "state"})
		w.Write([]string{"instructor", "", resp.GetInstructorTokenSecret(), "", ""})
		for _, l := range ws.GetLearners() {
			w.Write([]string{"learner", l.GetId(), secrets[l.GetId()], lastSegment(l.GetSandbox()), learnerState(l.GetState())})
		}
		w.Flush()
		err = w.Error()
	default:
		var b strings.Builder
		fmt.Fprintf(&b, "Workshop %s: lab %s, %s\n", ws.GetId(), lastSegment(ws.GetLab()), plural(len(ws.GetLearners()), "learner"))
		fmt.Fprintf(&b, "Instructor token: %s\n\n", resp.GetInstructorTokenSecret())
		tw := newTable(&b)
		fmt.Fprintln(tw, "LEARNER\tSTATE\tSANDBOX\tTOKEN")
		for _, l := range ws.GetLearners() {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", l.GetId(), learnerState(l.GetState()), orDash(lastSegment(l.GetSandbox())), secrets[l.GetId()])
		}
		tw.Flush()
		if _, err = io.WriteString(c.stdout, b.String()); err == nil {
			fmt.Fprintln(c.stderr, "labctl: the tokens are shown only now; keep them")
		}
	}
	if err != nil {
		return err
	}
	return failedLearners(ws)
}

// failedLearners is an error naming the learners whose sandbox failed.
func failedLearners(ws *labsv1.Workshop) error {
	var failed []string
	for _, l := range ws.GetLearners() {
		if l.GetState() == labsv1.Learner_STATE_FAILED {
			failed = append(failed, l.GetId())
		}
	}
	if len(failed) == 0 {
		return nil
	}
	return fmt.Errorf("workshop %s: the sandboxes of %d of %d learners failed (%s); `labctl workshop show %s` says why",
		ws.GetId(), len(failed), len(ws.GetLearners()), strings.Join(failed, ", "), ws.GetId())
}

func sandboxes(n int) string {
	if n == 1 {
		return "1 sandbox"
	}
	return fmt.Sprintf("%d sandboxes", n)
}

// learnerState is STATE_NO_SANDBOX as "no-sandbox".
func learnerState(s labsv1.Learner_State) string {
	return strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(s.String(), "STATE_")), "_", "-")
}

func (c *cli) workshopLsCommand() *cobra.Command {
	var (
		out output
		all bool
	)
	cmd := &cobra.Command{
		Use:     "ls [-o json|table] [-q] [--all]",
		Short:   "list workshops",
		Example: "  labctl workshop ls\n  labctl workshop ls --all -o json",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := out.check(cmd); err != nil {
				return err
			}
			return c.workshopLs(cmd.Context(), out, all)
		},
	}
	out.register(cmd.Flags(), "workshop ids")
	cmd.Flags().BoolVarP(&all, "all", "a", false, "deleted workshops too")
	return cmd
}

func (c *cli) workshopLs(ctx context.Context, out output, all bool) error {
	client, err := c.workshopClient()
	if err != nil {
		return err
	}
	var (
		list  []*labsv1.Workshop
		token string
		seen  = map[string]bool{}
	)
	for {
		cctx, cancel := c.unary(ctx)
		resp, err := client.ListWorkshops(cctx, &labsv1.ListWorkshopsRequest{PageToken: token, ShowDeleted: all})
		cancel()
		if err != nil {
			return rpcError("list workshops", err)
		}
		list = append(list, resp.GetWorkshops()...)
		if resp.GetNextPageToken() == "" {
			break
		}
		if token, err = nextPage(seen, resp.GetNextPageToken()); err != nil {
			return fmt.Errorf("list workshops: %w", err)
		}
	}
	switch {
	case out.quiet:
		for _, ws := range list {
			fmt.Fprintln(c.stdout, ws.GetId())
		}
		return nil
	case out.format == "json":
		return c.printJSON(&labsv1.ListWorkshopsResponse{Workshops: list})
	}
	now := c.cfg.now()
	tw := newTable(c.stdout)
	fmt.Fprintln(tw, "ID\tLAB\tLEARNERS\tAGE\tCREATOR\tDELETED")
	for _, ws := range list {
		deleted := "-"
		if ws.GetDeleteTime() != nil {
			deleted = age(now, ws.GetDeleteTime()) + " ago"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\n", ws.GetId(), lastSegment(ws.GetLab()), ws.GetLearnerCount(),
			age(now, ws.GetCreateTime()), orDash(ws.GetCreator()), deleted)
	}
	return tw.Flush()
}

func (c *cli) getWorkshop(ctx context.Context, id string) (*labsv1.Workshop, error) {
	client, err := c.workshopClient()
	if err != nil {
		return nil, err
	}
	cctx, cancel := c.unary(ctx)
	defer cancel()
	resp, err := client.GetWorkshop(cctx, &labsv1.GetWorkshopRequest{Name: id})
	if err != nil {
		return nil, rpcError("get workshop "+id, err)
	}
	return resp.GetWorkshop(), nil
}

func (c *cli) workshopShowCommand() *cobra.Command {
	var out output
	cmd := &cobra.Command{
		Use:     "show [-o json|table] [-q] ID",
		Short:   "a workshop's learners and their sandboxes",
		Example: "  labctl workshop show w-3f9a1c\n  labctl workshop show -q w-3f9a1c   # learner names",
		Args:    exactArgs(1, "exactly one workshop ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := out.check(cmd); err != nil {
				return err
			}
			ws, err := c.getWorkshop(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			switch {
			case out.quiet:
				for _, l := range ws.GetLearners() {
					fmt.Fprintln(c.stdout, l.GetId())
				}
				return nil
			case out.format == "json":
				return c.printJSON(ws)
			}
			return writeWorkshop(c.stdout, ws, c.cfg.now())
		},
	}
	out.register(cmd.Flags(), "learner names")
	return cmd
}

func writeWorkshop(w io.Writer, ws *labsv1.Workshop, now time.Time) error {
	tw := newTable(w)
	fmt.Fprintf(tw, "ID:\t%s\n", ws.GetId())
	fmt.Fprintf(tw, "Lab:\t%s\n", lastSegment(ws.GetLab()))
	fmt.Fprintf(tw, "Created:\t%s\n", when(now, ws.GetCreateTime()))
	if ws.GetDeleteTime() != nil {
		fmt.Fprintf(tw, "Deleted:\t%s\n", when(now, ws.GetDeleteTime()))
	}
	if ttl := ws.GetTtl(); ttl != nil {
		fmt.Fprintf(tw, "Sandbox TTL:\t%s\n", ttl.AsDuration())
	}
	fmt.Fprintf(tw, "Creator:\t%s\n", orDash(ws.GetCreator()))
	fmt.Fprintf(tw, "Learners:\t%d\n", len(ws.GetLearners()))
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	tw = newTable(w)
	fmt.Fprintln(tw, "LEARNER\tSTATE\tSANDBOX\tTOKEN\tFAILURE")
	for _, l := range ws.GetLearners() {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", l.GetId(), learnerState(l.GetState()), orDash(lastSegment(l.GetSandbox())),
			orDash(l.GetToken()), orDash(oneLine(l.GetFailureReason())))
	}
	return tw.Flush()
}

// oneLine keeps a message on one table or CSV line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

func (c *cli) workshopDeleteCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "delete ID",
		Short: "end a workshop: revoke its tokens, delete its sandboxes",
		Long: "Revokes every token of the workshop and deletes its learners' sandboxes.\n" +
			"The roster and the grades are kept: `labctl workshop report` still works.",
		Example: "  labctl workshop report -o csv w-3f9a1c > grades.csv && labctl workshop delete w-3f9a1c",
		Args:    exactArgs(1, "exactly one workshop ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			client, err := c.workshopClient()
			if err != nil {
				return err
			}
			cctx, cancel := c.unary(cmd.Context())
			defer cancel()
			resp, err := client.DeleteWorkshop(cctx, &labsv1.DeleteWorkshopRequest{Name: args[0]})
			if err != nil {
				return rpcError("delete workshop "+args[0], err)
			}
			_, err = fmt.Fprintf(c.stdout, "deleted workshop %s: %s deleted, %s revoked\n", resp.GetWorkshop().GetId(),
				sandboxes(int(resp.GetDeletedSandboxes())), plural(int(resp.GetRevokedTokens()), "token"))
			return err
		},
	}
}

func (c *cli) workshopReportCommand() *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "report [-o table|csv|json] ID",
		Short: "every learner's scores and failing checks",
		Long: "Prints one row per learner: their sandbox and its state, the total of\n" +
			"their latest score of each exercise, the maximum, how many exercises\n" +
			"passed and which checks still fail. CSV columns: learner, sandbox, state,\n" +
			"total_score, max_score, passed_exercises, failing_checks (each\n" +
			"\"exercise/check: message\", separated by \"; \").",
		Example: "  labctl workshop report w-3f9a1c\n  labctl workshop report -o csv w-3f9a1c > grades.csv",
		Args:    exactArgs(1, "exactly one workshop ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !slices.Contains([]string{"table", "json", "csv"}, format) {
				return usagef(cmd, "unknown output format %q (want table, csv or json)", format)
			}
			rep, err := c.workshopReport(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			switch format {
			case "json":
				return c.printJSON(rep)
			case "csv":
				return writeReportCSV(c.stdout, rep)
			}
			return writeReportTable(c.stdout, rep)
		},
	}
	cmd.Flags().StringVarP(&format, "output", "o", "table", "output format: table, csv or json")
	return cmd
}

func (c *cli) workshopReport(ctx context.Context, id string) (*labsv1.WorkshopReport, error) {
	client, err := c.workshopClient()
	if err != nil {
		return nil, err
	}
	cctx, cancel := c.unary(ctx)
	defer cancel()
	resp, err := client.GetWorkshopReport(cctx, &labsv1.GetWorkshopReportRequest{Name: id})
	if err != nil {
		return nil, rpcError("report of workshop "+id, err)
	}
	return resp.GetReport(), nil
}

// failing lists a learner's failed checks as "exercise/check", with
// ": message" when withMessages.
func failing(lr *labsv1.LearnerReport, withMessages bool) []string {
	var out []string
	for _, ex := range lr.GetExercises() {
		for _, fc := range ex.GetFailedChecks() {
			s := ex.GetExercise() + "/" + fc.GetCheck()
			if m := oneLine(fc.GetMessage()); withMessages && m != "" {
				s += ": " + m
			}
			out = append(out, s)
		}
	}
	return out
}

func writeReportCSV(w io.Writer, rep *labsv1.WorkshopReport) error {
	cw := csv.NewWriter(w)
	cw.Write([]string{"learner", "sandbox", "state", "total_score", "max_score", "passed_exercises", "failing_checks"})
	for _, lr := range rep.GetLearners() {
		cw.Write([]string{
			lr.GetLearner(), lastSegment(lr.GetSandbox()), learnerState(lr.GetState()),
			fmt.Sprint(lr.GetTotalScore()), fmt.Sprint(lr.GetMaxScore()), fmt.Sprint(lr.GetPassedExercises()),
			strings.Join(failing(lr, true), "; "),
		})
	}
	cw.Flush()
	return cw.Error()
}

func writeReportTable(w io.Writer, rep *labsv1.WorkshopReport) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "LEARNER\tSANDBOX\tSTATE\tSCORE\tPASSED\tFAILING")
	for _, lr := range rep.GetLearners() {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d/%d\t%d/%d\t%s\n", lr.GetLearner(), orDash(lastSegment(lr.GetSandbox())),
			learnerState(lr.GetState()), lr.GetTotalScore(), lr.GetMaxScore(), lr.GetPassedExercises(),
			len(lr.GetExercises()), orDash(strings.Join(failing(lr, false), ", ")))
	}
	return tw.Flush()
}

func (c *cli) workshopWatchCommand() *cobra.Command {
	var ascii bool
	cmd := &cobra.Command{
		Use:   "watch [--ascii] ID",
		Short: "the class's grades, live, until Ctrl-C",
		Long: "Shows every learner's latest score of each exercise and updates it as\n" +
			"they are graded. On a terminal the table is redrawn in place; otherwise\n" +
			"the table is printed once and then one line per new grade.",
		Example: "  labctl workshop watch w-3f9a1c\n  labctl workshop watch w-3f9a1c | tee progress.log",
		Args:    exactArgs(1, "exactly one workshop ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.workshopWatch(cmd.Context(), args[0], marks(ascii))
		},
	}
	cmd.Flags().BoolVar(&ascii, "ascii", false, "print PASS and FAIL instead of ✓ and ✗")
	return cmd
}

// progressTable is what watch shows: learners by exercises.
type progressTable struct {
	learners  []string
	exercises []string
	maxScore  map[string]int32                            // by exercise, from the lab
	grades    map[string]map[string]*labsv1.ExerciseGrade // learner -> exercise
}

func (p *progressTable) apply(m *labsv1.WatchProgressResponse) {
	if m.GetKind() == labsv1.WatchProgressResponse_KIND_SNAPSHOT {
		p.learners, p.grades = nil, map[string]map[string]*labsv1.ExerciseGrade{}
		for _, lp := range m.GetLearners() {
			p.learners = append(p.learners, lp.GetLearner())
		}
	}
	for _, lp := range m.GetLearners() {
		if p.grades[lp.GetLearner()] == nil {
			p.grades[lp.GetLearner()] = map[string]*labsv1.ExerciseGrade{}
		}
		for _, eg := range lp.GetExercises() {
			p.grades[lp.GetLearner()][eg.GetExercise()] = eg
			if !slices.Contains(p.exercises, eg.GetExercise()) {
				p.exercises = append(p.exercises, eg.GetExercise())
			}
		}
	}
}

func (p *progressTable) write(w io.Writer, m passMarks) error {
	tw := newTable(w)
	fmt.Fprint(tw, "LEARNER")
	for _, ex := range p.exercises {
		fmt.Fprint(tw, "\t"+strings.ToUpper(ex))
	}
	fmt.Fprintln(tw, "\tTOTAL")
	for _, l := range p.learners {
		fmt.Fprint(tw, l)
		var total, maxTotal int32
		for _, ex := range p.exercises {
			eg := p.grades[l][ex]
			cell := "-"
			maxTotal += p.maxScore[ex]
			if eg != nil {
				mark := m.fail
				if eg.GetPassed() {
					mark = m.pass
				}
				cell = fmt.Sprintf("%s %d/%d", mark, eg.GetScore(), eg.GetMaxScore())
				total += eg.GetScore()
				maxTotal += eg.GetMaxScore() - p.maxScore[ex]
			}
			fmt.Fprint(tw, "\t"+cell)
		}
		fmt.Fprintf(tw, "\t%d/%d\n", total, maxTotal)
	}
	return tw.Flush()
}

// workshopWatch is "labctl workshop watch ID". The exercise columns come
// from the report, so ungraded exercises show too.
func (c *cli) workshopWatch(ctx context.Context, id string, m passMarks) error {
	rep, err := c.workshopReport(ctx, id)
	if err != nil {
		return err
	}
	table := &progressTable{exercises: rep.GetExercises(), maxScore: map[string]int32{}}
	if len(rep.GetLearners()) > 0 {
		for _, eg := range rep.GetLearners()[0].GetExercises() {
			table.maxScore[eg.GetExercise()] = eg.GetMaxScore()
		}
	}
	client, err := c.workshopClient()
	if err != nil {
		return err
	}
	// Not bounded by --timeout: it runs until Ctrl-C.
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := client.WatchProgress(sctx, &labsv1.WatchProgressRequest{Name: id})
	if err != nil {
		return rpcError("watch workshop "+id, err)
	}
	live := c.cfg.terminal(c.stdout)
	for {
		msg, err := stream.Recv()
		if err != nil {
			return rpcError("watch workshop "+id, err)
		}
		table.apply(msg)
		switch {
		case live:
			var b strings.Builder
			b.WriteString("\x1b[H\x1b[2J") // home, clear: redraw in place
			fmt.Fprintf(&b, "workshop %s (%s) at %s — Ctrl-C to stop\n\n", lastSegment(rep.GetWorkshop()), lastSegment(rep.GetLab()),
				c.cfg.now().Format("15:04:05"))
			if err := table.write(&b, m); err != nil {
				return err
			}
			if _, err := io.WriteString(c.stdout, b.String()); err != nil {
				return err
			}
		case msg.GetKind() == labsv1.WatchProgressResponse_KIND_SNAPSHOT:
			if err := table.write(c.stdout, m); err != nil {
				return err
			}
		default:
			for _, lp := range msg.GetLearners() {
				for _, eg := range lp.GetExercises() {
					mark := m.fail
					if eg.GetPassed() {
						mark = m.pass
					}
					fmt.Fprintf(c.stdout, "%s %s %s %s %d/%d\n", eg.GetGradeTime().AsTime().Local().Format("15:04:05"),
						lp.GetLearner(), eg.GetExercise(), mark, eg.GetScore(), eg.GetMaxScore())
				}
			}
		}
	}
}

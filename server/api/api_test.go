package api

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"nslab/labs"
	labsv1 "nslab/proto/labs/v1"
	"nslab/sandbox"
	"nslab/server/store"
)

// fieldViolations returns the BadRequest field violations of a status
// error, as "field" -> "description".
func fieldViolations(t *testing.T, err error) map[string]string {
	t.Helper()
	st, ok := status.FromError(err)
	if !ok {
		t.Fatalf("%v is not a status error", err)
	}
	out := map[string]string{}
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				out[v.GetField()] = v.GetDescription()
			}
		}
	}
	return out
}

func TestToStatus(t *testing.T) {
	validation := &labs.ValidationError{
		Source: "labs/x.yaml",
		Problems: []labs.Problem{
			{Field: "nodes[0].interfaces[0].name", Message: "name too long"},
			{Field: "requires[0]", Message: `unknown feature "teleport"`},
		},
	}
	passthrough := status.Error(codes.Unauthenticated, "no token")
	tests := []struct {
		name string
		err  error
		code codes.Code
		// violations expected in a BadRequest detail (field -> description).
		violations map[string]string
	}{
		{name: "lab not found", err: fmt.Errorf("get lab %q: %w", "nope", labs.ErrNotFound), code: codes.NotFound},
		{name: "row not found", err: fmt.Errorf("get sandbox s-abcdef: %w", store.ErrNotFound), code: codes.NotFound},
		{name: "node not found", err: fmt.Errorf("node %q: %w", "h9", sandbox.ErrNodeNotFound), code: codes.NotFound},
		{name: "already exists", err: fmt.Errorf("create: %w", store.ErrAlreadyExists), code: codes.AlreadyExists},
		{name: "uid ranges exhausted", err: fmt.Errorf("create sandbox of lab routed: %w", store.ErrExhausted), code: codes.ResourceExhausted},
		{
			name: "lab validation", err: fmt.Errorf("load labs: %w", validation), code: codes.InvalidArgument,
			violations: map[string]string{
				"nodes[0].interfaces[0].name": "labs/x.yaml: name too long",
				"requires[0]":                 `labs/x.yaml: unknown feature "teleport"`,
			},
		},
		{
			name: "request field", err: fmt.Errorf("exec: %w", invalidField("stdin", "too big")), code: codes.InvalidArgument,
			violations: map[string]string{"stdin": "too big"},
		},
		{name: "store invalid", err: fmt.Errorf("list: %w", store.ErrInvalid), code: codes.InvalidArgument},
		{name: "kernel lacks feature", err: fmt.Errorf("lab x needs netem: %w", sandbox.ErrUnsupported), code: codes.FailedPrecondition},
		{name: "sandbox gone", err: fmt.Errorf("adopt: %w", sandbox.ErrGone), code: codes.FailedPrecondition},
		{name: "precondition", err: fmt.Errorf("sandbox s-abcdef is busy: %w", errPrecondition), code: codes.FailedPrecondition},
		{name: "permission", err: fmt.Errorf("solve in s-abcdef: %w", errPermission), code: codes.PermissionDenied},
		{name: "unauthenticated", err: fmt.Errorf("unknown token: %w", errUnauthenticated), code: codes.Unauthenticated},
		{name: "plain error", err: errors.New("netlink: operation not permitted"), code: codes.Internal},
		{name: "canceled", err: fmt.Errorf("build: %w", context.Canceled), code: codes.Canceled},
		{name: "deadline", err: fmt.Errorf("build: %w", context.DeadlineExceeded), code: codes.DeadlineExceeded},
		{name: "status passes through", err: passthrough, code: codes.Unauthenticated},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := toStatus(tc.err)
			st, ok := status.FromError(got)
			if !ok {
				t.Fatalf("toStatus(%v) = %v, not a status", tc.err, got)
			}
			if st.Code() != tc.code {
				t.Errorf("code = %v, want %v (err %v)", st.Code(), tc.code, tc.err)
			}
			// The message is what the wrapping built: it says what was being done.
			if want := tc.err.Error(); tc.err != passthrough && st.Message() != want {
				t.Errorf("message = %q, want %q", st.Message(), want)
			}
			v := fieldViolations(t, got)
			if len(v) != len(tc.violations) {
				t.Errorf("violations = %q, want %q", v, tc.violations)
			}
			for f, d := range tc.violations {
				if v[f] != d {
					t.Errorf("violation %q = %q, want %q", f, v[f], d)
				}
			}
		})
	}
	if err := toStatus(nil); err != nil {
		t.Errorf("toStatus(nil) = %v, want nil", err)
	}
}

func TestSandboxID(t *testing.T) {
	tests := []struct {
		in, want string // want "" = InvalidArgument
	}{
		{"sandboxes/s-7f3a9c", "s-7f3a9c"},
		{"s-7f3a9c", "s-7f3a9c"},
		{"s-000000", "s-000000"},
		{"", ""},
		{"sandboxes/", ""},
		{"sandboxes/s-7F3A9C", ""},  // upper case
		{"sandboxes/s-7f3a9", ""},   // too short
		{"sandboxes/s-7f3a9cd", ""}, // too long
		{"sandboxes/x-7f3a9c", ""},
		{"sandboxes/s-7f3a9c/nodes/h1", ""},
		{"labs/s-7f3a9c", ""},
		{"s-7f3a9c/..", ""},
		{"../s-7f3a9c", ""},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := sandboxID("name", tc.in)
			checkID(t, got, err, tc.want, "name")
		})
	}
}

func TestLabID(t *testing.T) {
	tests := []struct {
		in, want string // want "" = InvalidArgument
	}{
		{"labs/routed", "routed"},
		{"routed", "routed"},
		{"labs/hello-link", "hello-link"},
		{"", ""},
		{"labs/", ""},
		{"labs/a/b", ""},
		{"labs/labs/routed", ""},
		{"sandboxes/routed", ""},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := labID("lab", tc.in)
			checkID(t, got, err, tc.want, "lab")
		})
	}
}

// checkID checks a parsed resource id: want "" means the parse must fail
// with an InvalidArgument status naming field.
func checkID(t *testing.T, got string, err error, want, field string) {
	t.Helper()
	if want != "" {
		if err != nil || got != want {
			t.Errorf("= %q, %v; want %q", got, err, want)
		}
		return
	}
	if err == nil {
		t.Fatalf("= %q, want an error", got)
	}
	st := toStatus(err)
	if status.Code(st) != codes.InvalidArgument {
		t.Errorf("code = %v, want InvalidArgument", status.Code(st))
	}
	if _, ok := fieldViolations(t, st)[field]; !ok {
		t.Errorf("no field violation for %q in %v", field, st)
	}
}

func testCatalog(t *testing.T) *labs.Catalog {
	t.Helper()
	c, err := labs.NewCatalog()
	if err != nil {
		t.Fatal(err)
	}
	// A third lab so that paging has a middle page.
	c.Add(&labs.Lab{ID: "zz-extra", Title: "Extra"})
	return c
}

func TestListLabsPagination(t *testing.T) {
	srv := NewLabServer(testCatalog(t))
	ctx := context.Background()
	var ids []string
	token := ""
	for page := 0; ; page++ {
		if page > 200 { // far more pages than the catalog has labs
			t.Fatalf("paging does not end; ids so far %q", ids)
		}
		resp, err := srv.ListLabs(ctx, &labsv1.ListLabsRequest{PageSize: 1, PageToken: token})
		if err != nil {
			t.Fatalf("page %d (token %q): %v", page, token, err)
		}
		if len(resp.GetLabs()) != 1 {
			t.Fatalf("page %d: %d labs, want 1", page, len(resp.GetLabs()))
		}
		l := resp.GetLabs()[0]
		if l.GetName() != "labs/"+l.GetId() {
			t.Errorf("lab name %q, id %q", l.GetName(), l.GetId())
		}
		ids = append(ids, l.GetId())
		token = resp.GetNextPageToken()
		if token == "" {
			break
		}
	}
	all, err := srv.ListLabs(ctx, &labsv1.ListLabsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, l := range all.GetLabs() {
		want = append(want, l.GetId())
	}
	if all.GetNextPageToken() != "" {
		t.Errorf("default page size left a next page: %q", all.GetNextPageToken())
	}
	if !slices.Equal(ids, want) || !slices.IsSorted(ids) {
		t.Errorf("paged ids %q, want %q in order", ids, want)
	}
	for _, id := range []string{"hello-link", "routed", "zz-extra"} {
		if !slices.Contains(ids, id) {
			t.Errorf("lab %q missing from %q", id, ids)
		}
	}

	bad := []struct {
		name  string
		req   *labsv1.ListLabsRequest
		field string
	}{
		{"token not a number", &labsv1.ListLabsRequest{PageToken: "abc"}, "page_token"},
		{"negative token", &labsv1.ListLabsRequest{PageToken: "-1"}, "page_token"},
		{"token past the end", &labsv1.ListLabsRequest{PageToken: "99"}, "page_token"},
		{"negative page size", &labsv1.ListLabsRequest{PageSize: -1}, "page_size"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := srv.ListLabs(ctx, tc.req)
			if status.Code(err) != codes.InvalidArgument {
				t.Fatalf("ListLabs(%v) = %v, want InvalidArgument", tc.req, err)
			}
			if _, ok := fieldViolations(t, err)[tc.field]; !ok {
				t.Errorf("no field violation for %q in %v", tc.field, err)
			}
		})
	}
}

func TestGetLab(t *testing.T) {
	srv := NewLabServer(testCatalog(t))
	tests := []struct {
		name string
		code codes.Code
		id   string
	}{
		{"labs/routed", codes.OK, "routed"},
		{"routed", codes.OK, "routed"},
		{"labs/nope", codes.NotFound, ""},
		{"", codes.InvalidArgument, ""},
		{"labs/a/b", codes.InvalidArgument, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := srv.GetLab(context.Background(), &labsv1.GetLabRequest{Name: tc.name})
			if status.Code(err) != tc.code {
				t.Fatalf("GetLab(%q) = %v, want %v", tc.name, err, tc.code)
			}
			if tc.code == codes.NotFound && !strings.Contains(status.Convert(err).Message(), `"nope"`) {
				t.Errorf("NotFound message %q does not name the lab", status.Convert(err).Message())
			}
			if tc.code != codes.OK {
				return
			}
			l := resp.GetLab()
			if l.GetId() != tc.id || l.GetName() != "labs/"+tc.id {
				t.Errorf("lab = %q (%q), want %q", l.GetId(), l.GetName(), tc.id)
			}
			if tc.id == "routed" && (len(l.GetNodes()) != 4 || len(l.GetLinks()) != 3) {
				t.Errorf("routed: %d nodes, %d links; want 4 and 3", len(l.GetNodes()), len(l.GetLinks()))
			}
		})
	}
}

package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

func TestGrades(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := range 5 {
		ex := "e1"
		if i%2 == 1 {
			ex = "e2"
		}
		if _, err := s.AddGrade(ctx, &Grade{Sandbox: "s-aaaaaa", Lab: "l", LabHash: "h", Exercise: ex,
			Time: time.Now(), Score: i, Max: 5, Report: []byte(fmt.Sprintf(`{"i":%d}`, i))}); err != nil {
			t.Fatal(err)
		}
	}
	all, next, err := s.ListGrades(ctx, "s-aaaaaa", "", 2, "")
	if err != nil || len(all) != 2 || next == "" || all[0].Score != 4 || all[1].Score != 3 {
		t.Fatalf("page 1 = %v %q %v", all, next, err)
	}
	rest, next, err := s.ListGrades(ctx, "s-aaaaaa", "", 10, next)
	if err != nil || len(rest) != 3 || next != "" || rest[0].Score != 2 {
		t.Fatalf("page 2 = %v %q %v", rest, next, err)
	}
	e2, _, err := s.ListGrades(ctx, "s-aaaaaa", "e2", 10, "")
	if err != nil || len(e2) != 2 || string(e2[0].Report) != `{"i":3}` {
		t.Fatalf("e2 = %v %v", e2, err)
	}
	if _, _, err := s.ListGrades(ctx, "s-aaaaaa", "", 10, "!!"); !errors.Is(err, ErrInvalid) {
		t.Errorf("bad token: %v", err)
	}
	// Grades outlive their sandbox row.
	if err := s.DeleteSandbox(ctx, "s-aaaaaa"); err != nil {
		t.Fatal(err)
	}
	if g, _, _ := s.ListGrades(ctx, "s-aaaaaa", "", 10, ""); len(g) != 5 {
		t.Errorf("after delete: %d grades", len(g))
	}
}

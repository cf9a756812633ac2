package hclogslog

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
)

func TestLevelsAndAttrs(t *testing.T) {
	var buf bytes.Buffer
	h := slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: LevelTrace})
	l := New(slog.New(h)).Named("raft").With("replica", "r1")
	l.SetLevel(hclog.Trace)
	tests := []struct {
		log  func(string, ...any)
		want string
	}{
		{l.Trace, "level=DEBUG-4"},
		{l.Debug, "level=DEBUG"},
		{l.Info, "level=INFO"},
		{l.Warn, "level=WARN"},
		{l.Error, "level=ERROR"},
	}
	for _, tc := range tests {
		buf.Reset()
		tc.log("hello", "index", 7)
		got := buf.String()
		for _, w := range []string{tc.want, "msg=hello", "component=raft", "replica=r1", "index=7"} {
			if !strings.Contains(got, w) {
				t.Errorf("log line %q lacks %q", got, w)
			}
		}
	}
}

func TestSetLevelFilters(t *testing.T) {
	var buf bytes.Buffer
	l := New(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: LevelTrace})))
	l.SetLevel(hclog.Warn)
	l.Info("quiet")
	if buf.Len() != 0 {
		t.Errorf("Info below level Warn wrote %q", buf.String())
	}
	if l.IsInfo() || !l.IsWarn() {
		t.Errorf("IsInfo() = %v, IsWarn() = %v; want false, true", l.IsInfo(), l.IsWarn())
	}
	derived := l.Named("x")
	l.SetLevel(hclog.Off)
	if derived.IsError() {
		t.Errorf("derived logger still writes errors after SetLevel(Off)")
	}
	if got := l.GetLevel(); got != hclog.Off {
		t.Errorf("GetLevel() = %v; want Off", got)
	}
}

func TestStandardWriterAndNil(t *testing.T) {
	var buf bytes.Buffer
	l := New(slog.New(slog.NewTextHandler(&buf, nil)))
	l.StandardLogger(&hclog.StandardLoggerOptions{ForceLevel: hclog.Error}).Print("boom")
	if got := buf.String(); !strings.Contains(got, "level=ERROR") || !strings.Contains(got, "msg=boom") {
		t.Errorf("standard logger wrote %q; want an ERROR line with msg=boom", got)
	}
	n := New(nil)
	n.Error("dropped") // must not panic
	if n.IsError() {
		t.Errorf("discarding logger reports IsError() = true")
	}
	if got := n.ResetNamed("a").Named("b").Name(); got != "a.b" {
		t.Errorf("Name() = %q; want a.b", got)
	}
}

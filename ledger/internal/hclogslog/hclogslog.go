// Package hclogslog implements hashicorp/go-hclog's Logger on top of a
// log/slog Logger, so that Raft's logs go to the same handler as the rest of
// xborder.
//
// Levels map one to one (Trace goes to slog.LevelDebug-4), key/value pairs
// pass through unchanged, and a logger's name becomes the "component"
// attribute. The adapter writes nothing itself: the slog handler decides
// what is kept.
//
// # Security
//
// The adapter forwards whatever its callers log. Raft logs server IDs,
// addresses and indexes, never command payloads; callers must keep it so.
package hclogslog

import (
	"context"
	"io"
	"log"
	"log/slog"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"
)

// LevelTrace is the slog level that hclog's Trace maps to.
const LevelTrace = slog.LevelDebug - 4

// Logger is an hclog.Logger that writes to a slog.Logger.
type Logger struct {
	l       *slog.Logger
	name    string
	implied []any
	level   *atomic.Int32 // hclog.Level, shared by derived loggers
}

var _ hclog.Logger = (*Logger)(nil)

// New returns an hclog.Logger that writes to l. A nil l discards everything.
// The level starts at hclog.Info; SetLevel changes it for this logger and
// every logger derived from it.
func New(l *slog.Logger) *Logger {
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	lv := new(atomic.Int32)
	lv.Store(int32(hclog.Info))
	return &Logger{l: l, level: lv}
}

// slogLevel maps an hclog level to a slog level.
func slogLevel(level hclog.Level) slog.Level {
	switch level {
	case hclog.Trace:
		return LevelTrace
	case hclog.Debug:
		return slog.LevelDebug
	case hclog.Warn:
		return slog.LevelWarn
	case hclog.Error:
		return slog.LevelError
	default:
		return slog.LevelInfo
	}
}

func (a *Logger) enabled(level hclog.Level) bool {
	min := hclog.Level(a.level.Load())
	if min == hclog.Off {
		return false
	}
	if level < min && min != hclog.NoLevel {
		return false
	}
	return a.l.Enabled(context.Background(), slogLevel(level))
}

// Log writes msg at level with the key/value pairs args.
func (a *Logger) Log(level hclog.Level, msg string, args ...any) {
	if level == hclog.Off || !a.enabled(level) {
		return
	}
	all := make([]any, 0, len(a.implied)+len(args)+2)
	if a.name != "" {
		all = append(all, "component", a.name)
	}
	all = append(all, a.implied...)
	all = append(all, args...)
	a.l.Log(context.Background(), slogLevel(level), msg, all...)
}

// Trace logs at trace level.
func (a *Logger) Trace(msg string, args ...any) { a.Log(hclog.Trace, msg, args...) }

// Debug logs at debug level.
func (a *Logger) Debug(msg string, args ...any) { a.Log(hclog.Debug, msg, args...) }

// Info logs at info level.
func (a *Logger) Info(msg string, args ...any) { a.Log(hclog.Info, msg, args...) }

// Warn logs at warn level.
func (a *Logger) Warn(msg string, args ...any) { a.Log(hclog.Warn, msg, args...) }

// Error logs at error level.
func (a *Logger) Error(msg string, args ...any) { a.Log(hclog.Error, msg, args...) }

// IsTrace reports whether trace messages are written.
func (a *Logger) IsTrace() bool { return a.enabled(hclog.Trace) }

// IsDebug reports whether debug messages are written.
func (a *Logger) IsDebug() bool { return a.enabled(hclog.Debug) }

// IsInfo reports whether info messages are written.
func (a *Logger) IsInfo() bool { return a.enabled(hclog.Info) }

// IsWarn reports whether warnings are written.
func (a *Logger) IsWarn() bool { return a.enabled(hclog.Warn) }

// IsError reports whether errors are written.
func (a *Logger) IsError() bool { return a.enabled(hclog.Error) }

// ImpliedArgs returns the key/value pairs added by With.
func (a *Logger) ImpliedArgs() []any { return a.implied }

// With returns a logger that adds args to every message.
func (a *Logger) With(args ...any) hclog.Logger {
	c := *a
	c.implied = append(append([]any(nil), a.implied...), args...)
	return &c
}

// Name returns the logger's name.
func (a *Logger) Name() string { return a.name }

// Named returns a logger whose name is this one's with name appended.
func (a *Logger) Named(name string) hclog.Logger {
	c := *a
	if c.name != "" {
		c.name += "." + name
	} else {
		c.name = name
	}
	return &c
}

// ResetNamed returns a logger named name.
func (a *Logger) ResetNamed(name string) hclog.Logger {
	c := *a
	c.name = name
	return &c
}

// SetLevel sets the lowest level written, for this logger and its relatives.
func (a *Logger) SetLevel(level hclog.Level) { a.level.Store(int32(level)) }

// GetLevel returns the lowest level written.
func (a *Logger) GetLevel() hclog.Level { return hclog.Level(a.level.Load()) }

// StandardLogger returns a standard library logger that writes through a.
func (a *Logger) StandardLogger(opts *hclog.StandardLoggerOptions) *log.Logger {
	return log.New(a.StandardWriter(opts), "", 0)
}

// StandardWriter returns a writer whose lines are logged at info level, or at
// opts.ForceLevel when set.
func (a *Logger) StandardWriter(opts *hclog.StandardLoggerOptions) io.Writer {
	level := hclog.Info
	if opts != nil && opts.ForceLevel != hclog.NoLevel {
		level = opts.ForceLevel
	}
	return writer{a: a, level: level}
}

type writer struct {
	a     *Logger
	level hclog.Level
}

func (w writer) Write(p []byte) (int, error) {
	msg := string(p)
	for len(msg) > 0 && (msg[len(msg)-1] == '\n' || msg[len(msg)-1] == '\r') {
		msg = msg[:len(msg)-1]
	}
	w.a.Log(w.level, msg)
	return len(p), nil
}

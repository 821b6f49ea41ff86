package function

import (
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"github.com/rs/zerolog/log"
)

// func-go (knative.dev/func-go v0.22.0, http package) logs through
// zerolog's global logger and, in its init, sets Unix-seconds timestamps and
// the debug level. Its lines then sit between the function's slog JSON lines
// in another shape and at another level. The func CLI generates its own main
// for `func deploy` (http.Start(f.New())), so the only place that runs before
// func-go's first line in every build is New: the scaffolding evaluates
// f.New() before http.Start logs anything. That is why this configuration is
// global state set from New: zerolog offers no other hook, and func-go's
// logger is zerolog's package-level one.

// funcGoStopMessage is the message func-go's http.Service.Start logs every
// error that stops the service with, just before it returns the same error
// to main, which prints it again (the scaffolding's main does
// `fmt.Fprintln(os.Stderr, err.Error())`; we cannot change that main).
const funcGoStopMessage = "function error"

// configureRuntimeLog makes func-go's zerolog lines look like the
// function's slog JSON lines: keys "time" (RFC 3339), "level" (DEBUG, INFO,
// WARN, ERROR) and "msg", the same minimum level, written to w. The error
// that stops the service is left to main to print, once.
func configureRuntimeLog(min slog.Level, w io.Writer) {
	zerolog.TimestampFieldName = slog.TimeKey
	zerolog.LevelFieldName = slog.LevelKey
	zerolog.MessageFieldName = slog.MessageKey
	zerolog.ErrorFieldName = "error"           // the key the function's own lines use
	zerolog.TimeFieldFormat = time.RFC3339Nano // as slog's JSON handler writes it
	zerolog.LevelFieldMarshalFunc = func(l zerolog.Level) string { return slogLevel(l).String() }
	lvl := zerologLevel(min)
	zerolog.SetGlobalLevel(lvl)
	log.Logger = zerolog.New(w).Level(lvl).With().Timestamp().Logger().Hook(dropStopError{})
}

// runtimeLogLevel is LOG_LEVEL as config.Load reads it (slog's level
// syntax); an invalid value is left to config.Load to report, once.
func runtimeLogLevel() slog.Level {
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.TrimSpace(os.Getenv("LOG_LEVEL")))); err != nil {
		return slog.LevelInfo
	}
	return l
}

// slogLevel maps a zerolog level onto slog's scale.
func slogLevel(l zerolog.Level) slog.Level {
	switch {
	case l <= zerolog.TraceLevel:
		return slog.LevelDebug - 4
	case l == zerolog.DebugLevel:
		return slog.LevelDebug
	case l == zerolog.InfoLevel:
		return slog.LevelInfo
	case l == zerolog.WarnLevel:
		return slog.LevelWarn
	case l == zerolog.ErrorLevel:
		return slog.LevelError
	default: // fatal, panic
		return slog.LevelError + 4
	}
}

// zerologLevel is the lowest zerolog level whose lines slog would print at
// min: "warn+2" lets ERROR through but not WARN, as for the function's own
// lines.
func zerologLevel(min slog.Level) zerolog.Level {
	for _, l := range []zerolog.Level{zerolog.TraceLevel, zerolog.DebugLevel, zerolog.InfoLevel,
		zerolog.WarnLevel, zerolog.ErrorLevel, zerolog.FatalLevel, zerolog.PanicLevel} {
		if slogLevel(l) >= min {
			return l
		}
	}
	return zerolog.Disabled
}

// dropStopError discards func-go's "function error" line: the error it
// carries is returned to main, which prints it; without this a configuration
// error is printed twice.
type dropStopError struct{}

func (dropStopError) Run(e *zerolog.Event, l zerolog.Level, msg string) {
	if l == zerolog.ErrorLevel && msg == funcGoStopMessage {
		e.Discard()
	}
}

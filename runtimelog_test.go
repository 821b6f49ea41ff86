package function

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/rs/zerolog/log"
)

// TestRuntimeLogLevel: func-go's lines pass exactly when slog would pass a
// line of the same level at LOG_LEVEL.
func TestRuntimeLogLevel(t *testing.T) {
	for _, c := range []struct {
		min  slog.Level
		want zerolog.Level
	}{
		{slog.LevelDebug - 4, zerolog.TraceLevel},
		{slog.LevelDebug, zerolog.DebugLevel},
		{slog.LevelDebug + 1, zerolog.InfoLevel},
		{slog.LevelInfo, zerolog.InfoLevel},
		{slog.LevelWarn, zerolog.WarnLevel},
		{slog.LevelWarn + 2, zerolog.ErrorLevel},
		{slog.LevelError, zerolog.ErrorLevel},
		{slog.LevelError + 4, zerolog.FatalLevel},
		{slog.LevelError + 5, zerolog.Disabled},
	} {
		if got := zerologLevel(c.min); got != c.want {
			t.Errorf("LOG_LEVEL %s: zerolog level %s, want %s", c.min, got, c.want)
		}
	}
}

func TestRuntimeLogLevelFromEnv(t *testing.T) {
	for env, want := range map[string]slog.Level{"": slog.LevelInfo, "debug": slog.LevelDebug, " WARN ": slog.LevelWarn,
		"warn+2": slog.LevelWarn + 2, "loud": slog.LevelInfo} {
		t.Setenv("LOG_LEVEL", env)
		if got := runtimeLogLevel(); got != want {
			t.Errorf("LOG_LEVEL=%q: %s, want %s", env, got, want)
		}
	}
}

// TestRuntimeLogShape: func-go's lines, as it writes them through zerolog's
// global logger, come out with the keys, time format and level names of
// the function's slog JSON lines; its "function error" line does not.
func TestRuntimeLogShape(t *testing.T) {
	var zl, sl bytes.Buffer
	configureRuntimeLog(slog.LevelInfo, &zl)
	log.Debug().Msg("function starting") // below LOG_LEVEL
	log.Info().Msg("Function implements Start")
	log.Error().Err(errors.New("configuration: JIRA_URL: is required")).Msg("function error")
	log.Error().Err(errors.New("accept tcp: closed")).Msg("http server exited with unexpected error")
	slog.New(slog.NewJSONHandler(&sl, nil)).Info("incident created", "error", "x")

	lines := strings.Split(strings.TrimSpace(zl.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("func-go lines:\n%s\nwant the info line and the server error only", zl.String())
	}
	var want map[string]any
	if err := json.Unmarshal(sl.Bytes(), &want); err != nil {
		t.Fatal(err)
	}
	for i, wantLevel := range []string{"INFO", "ERROR"} {
		var got map[string]any
		if err := json.Unmarshal([]byte(lines[i]), &got); err != nil {
			t.Fatalf("not JSON: %s", lines[i])
		}
		for k := range got {
			if _, ok := want[k]; !ok {
				t.Errorf("key %q is not one of slog's (%v): %s", k, want, lines[i])
			}
		}
		if got["level"] != wantLevel || got["msg"] == nil {
			t.Errorf("line %d: %s", i, lines[i])
		}
		ts, _ := got["time"].(string)
		if _, err := time.Parse(time.RFC3339Nano, ts); err != nil {
			t.Errorf("time %v: %v", got["time"], err)
		}
	}
}

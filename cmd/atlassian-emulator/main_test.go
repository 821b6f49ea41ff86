package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestRun(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	outR, outW := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-listen", "127.0.0.1:0", "-token", "t0k", "-projects", "SRE:Incident", "-spaces", "ENG,OPS"}, outW, io.Discard)
		outW.Close()
	}()

	line, err := bufio.NewReader(outR).ReadString('\n')
	if err != nil {
		t.Fatalf("read URL: %v", err)
	}
	base := strings.TrimSpace(line)
	if !strings.HasPrefix(base, "http://127.0.0.1:") {
		t.Fatalf("printed URL = %q", base)
	}
	go io.Copy(io.Discard, outR)

	req, _ := http.NewRequest("GET", base+"/wiki/api/v2/spaces?keys=eng", nil)
	req.SetBasicAuth("bot@example.com", "t0k")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var sl struct {
		Results []struct{ Key string }
		Links   map[string]string `json:"_links"`
	}
	err = json.NewDecoder(resp.Body).Decode(&sl)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || len(sl.Results) != 1 || sl.Links["base"] != base+"/wiki" {
		t.Fatalf("spaces: status %d, %+v, %v", resp.StatusCode, sl, err)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run returned %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not shut down")
	}
}

func TestRunFlagErrors(t *testing.T) {
	for _, args := range [][]string{
		{"-projects", "bad"},
		{"-spaces", " , "},
		{"-listen", "256.0.0.1:99999"},
		{"extra"},
	} {
		err := run(context.Background(), args, io.Discard, io.Discard)
		if err == nil {
			t.Errorf("run(%q) = nil, want error", args)
		}
	}
}

// Command rollback-incident runs the function as a plain process, exactly
// as the func scaffolding's main does (func-go in HTTP mode). Use it to run
// or build the function without the func CLI.
package main

import (
	"fmt"
	"os"

	fhttp "knative.dev/func-go/http"

	function "function"
)

func main() {
	if err := fhttp.Start(function.New()); err != nil {
		fmt.Fprintln(os.Stderr, err.Error())
		os.Exit(1)
	}
}

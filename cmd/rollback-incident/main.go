// Command rollback-incident runs the function as a plain process, as the
// func scaffolding's main does (func-go in HTTP mode), and logs the URL it
// listens on (internal/funcmain). Use it to run or build the function
// without the func CLI.
package main

import (
	"fmt"
	"os"

	"function/internal/funcmain"
)

func main() {
	if err := funcmain.Run(); err != nil {
		fmt.Fprintln(os.Stderr, err.Error())
		os.Exit(1)
	}
}

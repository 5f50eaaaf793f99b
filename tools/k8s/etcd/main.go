// etcd for the local control plane of tools/k8s: the server's own entry
// point (go.etcd.io/etcd/v3's main.go does the same).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }

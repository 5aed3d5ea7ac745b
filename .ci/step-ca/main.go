// step-ca for the tests, built from Debian's golang-github-smallstep-certificates-dev (the
// package ships the libraries but no cmd/step-ca; .ci/setup-step-ca.sh builds this).
//
//	step-ca <ca.json> [--password-file F]   runs the CA exactly as upstream's step-ca does
//	step-ca new-provisioner-key <password-file>
//	    prints {"key": <public JWK>, "encryptedKey": <JWE>} made the way `step ca init`
//	    makes a JWK provisioner's key (go.step.sm/crypto/jose.GenerateDefaultKeyPair:
//	    P-256, kid = thumbprint, PBES2-HS256+A128KW / A256GCM), so the controller is tested on
//	    the key format operators' step-ca installs hold.
package main

import (
	"encoding/json"
	"os"
	"strings"

	"github.com/smallstep/certificates/commands"
	"github.com/urfave/cli"
	"go.step.sm/crypto/jose"

	_ "github.com/smallstep/certificates/cas/softcas"
)

func fail(err error) {
	os.Stderr.WriteString(err.Error() + "\n")
	os.Exit(1)
}

func newProvisionerKey(passwordFile string) {
	password, err := os.ReadFile(passwordFile)
	if err != nil {
		fail(err)
	}
	public, jwe, err := jose.GenerateDefaultKeyPair([]byte(strings.TrimRight(string(password), "\r\n")))
	if err != nil {
		fail(err)
	}
	encrypted, err := jwe.CompactSerialize()
	if err != nil {
		fail(err)
	}
	out, err := json.Marshal(map[string]interface{}{"key": public, "encryptedKey": encrypted})
	if err != nil {
		fail(err)
	}
	os.Stdout.Write(append(out, '\n'))
}

func main() {
	if len(os.Args) == 3 && os.Args[1] == "new-provisioner-key" {
		newProvisionerKey(os.Args[2])
		return
	}
	app := cli.NewApp()
	app.Name = "step-ca"
	app.Usage = "step-ca <ca.json> [--password-file F]"
	app.Flags = commands.AppCommand.Flags
	app.Action = commands.AppCommand.Action
	if err := app.Run(os.Args); err != nil {
		fail(err)
	}
}

// Package secrets supplies the Atlassian credentials the function signs its
// Jira and Confluence calls with. By default they come from AWS Secrets
// Manager, so no token has to live in the GitOps repository or in the
// Knative Service's environment; Static exists for local runs and tests.
//
// # Secret format
//
// The secret's SecretString is a JSON object in one of two forms. Cloud
// (basic auth with an API token):
//
//	{"email": "bot@example.com", "api_token": "ATATT3x…", "auth_token": "optional"}
//
// Data Center / Server (personal access token, sent as "Authorization:
// Bearer"):
//
//	{"bearer_token": "NjM5…", "auth_token": "optional"}
//
// auth_token is optional in both forms: the bearer token inbound callers
// must present, kept here so it rotates with the rest. Values must be
// non-empty JSON strings; surrounding whitespace is trimmed (a token pasted
// with a trailing newline is the common case). Any other key, a mix of the two
// forms, or a SecretBinary secret is rejected as ErrMisconfigured, with a
// message that names the key and never the value.
//
// # IAM
//
// The function's role (IRSA or EKS Pod Identity) needs only:
//
//	{
//	  "Version": "2012-10-17",
//	  "Statement": [
//	    {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue",
//	     "Resource": "arn:aws:secretsmanager:<region>:<account>:secret:<name>-??????"},
//	    {"Effect": "Allow", "Action": "kms:Decrypt",
//	     "Resource": "arn:aws:kms:<region>:<account>:key/<key-id>",
//	     "Condition": {"StringEquals": {"kms:ViaService": "secretsmanager.<region>.amazonaws.com"}}}
//	  ]
//	}
//
// The kms:Decrypt statement is needed only when the secret is encrypted with
// a customer-managed KMS key; the default aws/secretsmanager key needs none.
// DescribeSecret is not needed: unlike aws-secretsmanager-caching-go, this
// package reads AWSCURRENT with a single GetSecretValue.
//
// # Caching and rotation
//
// SecretsManager keeps the credentials in process for a TTL (5 minutes by
// default), and concurrent callers share one GetSecretValue. When Atlassian
// answers 401, the caller hands the credentials it used to Invalidate; the
// cache is dropped only if it still holds exactly those, so a burst of 401s
// costs one refetch and a rotated token is picked up without a restart.
//
// # Errors
//
// Every failure wraps ErrMisconfigured (permanent until an operator fixes
// IAM, the KMS key or the secret) or ErrUnavailable (throttling, AWS 5xx,
// network, timeouts: retry later). Test with errors.Is. No error, log line
// or panic from this package contains a secret value; the secret's name or
// ARN does appear.
package secrets

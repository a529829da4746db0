#!/bin/sh
# azd postprovision hook (azure.yaml): what is left to do after `azd provision`
# or `azd up`, done or printed exactly.
#   1. The Twilio secrets go into Key Vault: Bicep never sees them. Run from a
#      terminal with the Azure CLI, this asks for each missing one and sets it
#      (read without echo, passed to `az` on stdin, never on a command line);
#      otherwise it prints the commands.
#   2. The URLs to give Twilio, for the webhook functions this app has.
# Running it again is safe: a secret already set is left alone (rotation is
# docs/deploy.md's), and the app restarts only when a secret changed.
#
# The Key Vault Secrets Officer role that lets this write was granted by the
# same deployment, seconds ago, and Azure applies role assignments with a
# delay of minutes (Azure RBAC troubleshooting, "role assignment changes are
# not being detected": https://learn.microsoft.com/azure/role-based-access-control/troubleshooting ;
# azd's own report of it: https://github.com/Azure/azure-dev/issues/2742).
# So a 403 from Key Vault is retried with growing pauses, about 8 minutes in
# all (KEY_VAULT_RETRY_DELAYS: the pauses in seconds), then the hook stops
# saying what to check; any other failure stops at once.
# azd puts infra/main.bicep's outputs and the azd environment in the environment.
set -eu

: "${AZURE_KEY_VAULT_NAME:?run by azd after provisioning (azd provision / azd up)}"
: "${AZURE_FUNCTION_APP_NAME:?}" "${AZURE_RESOURCE_GROUP:?}" "${PUBLIC_ORIGIN:?}"
: "${TWILIO_AUTH_TOKEN_KV_NAME:?}" "${TWILIO_API_KEY_KV_NAME:?}"
root=$(cd "$(dirname "$0")/../.." && pwd)
delays=${KEY_VAULT_RETRY_DELAYS:-5 10 20 40 60 60 60 60 60 60 60}

interactive=false
if [ -t 0 ] && command -v az >/dev/null 2>&1; then
    interactive=true
fi

forbidden() {  # $1 an az error: is it Key Vault refusing for want of a role?
    case "$1" in
        *Forbidden*|*"(403)"*|*"Status: 403"*|*"not authorized"*) return 0 ;;
        *) return 1 ;;
    esac
}

# Runs `az keyvault secret $1 ...` for entry $2, feeding $3 on stdin for `set`,
# until Key Vault stops refusing. Prints `exists`, `missing` or `set`.
key_vault() {
    op=$1 entry=$2 secret=${3:-} attempt=1
    # shellcheck disable=SC2086 # the pauses, one word each
    set -- $delays
    while :; do
        if [ "$op" = set ]; then
            error=$(printf '%s' "$secret" | az keyvault secret set --vault-name "$AZURE_KEY_VAULT_NAME" \
                --name "$entry" --file /dev/stdin --encoding utf-8 --output none 2>&1 >/dev/null) \
                && { echo set; return 0; }
        else
            error=$(az keyvault secret show --vault-name "$AZURE_KEY_VAULT_NAME" --name "$entry" \
                --query id --output tsv 2>&1 >/dev/null) && { echo exists; return 0; }
            case "$error" in
                *SecretNotFound*|*"(NotFound)"*) echo missing; return 0 ;;
            esac
        fi
        if ! forbidden "$error"; then
            case "$error" in
                *"deleted but recoverable"*)
                    echo "Key Vault: $entry was deleted and is still recoverable; recover it" \
                        "(az keyvault secret recover --vault-name $AZURE_KEY_VAULT_NAME --name $entry)" \
                        "or purge it, then run this again (azd hooks run postprovision)." >&2 ;;
                *) echo "Key Vault: $op $entry failed: $error" >&2 ;;
            esac
            return 1
        fi
        if [ $# -eq 0 ]; then
            echo "Key Vault still refuses ($op $entry: 403 after $attempt attempts over several" \
                "minutes). Check that you hold Key Vault Secrets Officer on $AZURE_KEY_VAULT_NAME" \
                "(az role assignment list --scope \$(az keyvault show --name $AZURE_KEY_VAULT_NAME" \
                "--query id --output tsv) --assignee \$(az ad signed-in-user show --query id --output tsv))," \
                "then run this again: azd hooks run postprovision. Nothing else needs redoing." >&2
            return 1
        fi
        echo "Key Vault refused ($op $entry: 403): the role this deployment granted is not in" \
            "effect yet; retrying in $1 s (attempt $((attempt + 1)))." >&2
        sleep "$1"
        shift
        attempt=$((attempt + 1))
    done
}

set_secret() {  # $1 Key Vault entry, $2 what it is
    if [ "$interactive" = true ]; then
        state=$(key_vault show "$1") || exit 1
        if [ "$state" = exists ]; then
            echo "Key Vault: $1 is set (rotate it as docs/deploy.md says)."
            return 0
        fi
        printf 'Paste the %s (input hidden; empty to skip): ' "$2"
        stty -echo
        IFS= read -r value || value=""
        stty echo
        echo
        if [ -n "$value" ]; then
            key_vault set "$1" "$value" >/dev/null || exit 1
            changed=true
            echo "Key Vault: $1 set."
            return 0
        fi
    fi
    echo "Set the $2 in Key Vault (the app reads it through a Key Vault reference):"
    echo "  printf '%s' \"\$SECRET\" | az keyvault secret set --vault-name $AZURE_KEY_VAULT_NAME --name $1 --file /dev/stdin --encoding utf-8 --output none"
}

changed=false
echo
set_secret "$TWILIO_AUTH_TOKEN_KV_NAME" "Twilio auth token"
if [ -n "${TWILIO_API_KEY_SID:-}" ]; then
    set_secret "$TWILIO_API_KEY_KV_NAME" "secret of Twilio API key $TWILIO_API_KEY_SID"
fi
if [ "$changed" = true ]; then
    # A restart makes App Service fetch every Key Vault reference again at once.
    az functionapp restart --resource-group "$AZURE_RESOURCE_GROUP" --name "$AZURE_FUNCTION_APP_NAME" --output none
    echo "Restarted $AZURE_FUNCTION_APP_NAME so it reads them now."
else
    echo "Then restart the app so it reads them at once:"
    echo "  az functionapp restart --resource-group $AZURE_RESOURCE_GROUP --name $AZURE_FUNCTION_APP_NAME"
fi

echo
echo "Point Twilio at the app ($PUBLIC_ORIGIN):"
# Twilio's connection overrides: retry a failed status callback (docs/storage.md).
CALLBACK_OVERRIDES='#rc=3&rp=5xx,ct,rt&ct=2000&rt=6000'
if [ -f "$root/twiml/function.json" ]; then
    echo "  Incoming SMS: your number's Messaging configuration (or your Messaging Service's"
    echo "  integration), 'A message comes in': Webhook, HTTP POST, $PUBLIC_ORIGIN/api/twiml"
    echo "    curl -X POST https://api.twilio.com/2010-04-01/Accounts/\$TWILIO_ACCOUNT_SID/IncomingPhoneNumbers/<PN...>.json \\"
    echo "      -u \"\$TWILIO_ACCOUNT_SID:\$TWILIO_AUTH_TOKEN\" --data-urlencode \"SmsUrl=$PUBLIC_ORIGIN/api/twiml\" -d SmsMethod=POST \\"
    echo "      --data-urlencode \"SmsFallbackUrl=$PUBLIC_ORIGIN/api/twiml\" -d SmsFallbackMethod=POST"
fi
if [ -f "$root/voice/function.json" ]; then
    echo "  Voice SDK calls: your TwiML App's Voice Request URL: HTTP POST $PUBLIC_ORIGIN/api/voice,"
    echo "  its Voice Fallback URL the same, and its Status Callback URL: HTTP POST"
    echo "  $PUBLIC_ORIGIN/api/status_callback$CALLBACK_OVERRIDES"
    echo "    curl -X POST https://api.twilio.com/2010-04-01/Accounts/\$TWILIO_ACCOUNT_SID/Applications/<AP...>.json \\"
    echo "      -u \"\$TWILIO_ACCOUNT_SID:\$TWILIO_AUTH_TOKEN\" --data-urlencode \"VoiceUrl=$PUBLIC_ORIGIN/api/voice\" -d VoiceMethod=POST \\"
    echo "      --data-urlencode \"VoiceFallbackUrl=$PUBLIC_ORIGIN/api/voice\" -d VoiceFallbackMethod=POST \\"
    echo "      --data-urlencode \"StatusCallback=$PUBLIC_ORIGIN/api/status_callback$CALLBACK_OVERRIDES\" -d StatusCallbackMethod=POST"
fi
echo "  Outgoing calls and messages need nothing more: the app gives Twilio its own"
if [ -f "$root/status_callback/function.json" ]; then
    echo "  TwiML and status callback URLs with each request."
else
    echo "  TwiML URL with each call."
fi
echo
echo "The mobile app's function key:"
echo "  az functionapp keys list --resource-group $AZURE_RESOURCE_GROUP --name $AZURE_FUNCTION_APP_NAME --query functionKeys.default --output tsv"

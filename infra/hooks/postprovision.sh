#!/bin/sh
# azd postprovision hook (azure.yaml): what is left to do after `azd provision`
# or `azd up`, done or printed exactly.
#   1. The Twilio secrets go into Key Vault: Bicep never sees them. Run from a
#      terminal with the Azure CLI, this asks for each missing one and sets it
#      (read without echo, passed to `az` on stdin, never on a command line);
#      otherwise it prints the commands.
#   2. The URLs to give Twilio, for the webhook functions this app has.
# azd puts infra/main.bicep's outputs and the azd environment in the environment.
set -eu

: "${AZURE_KEY_VAULT_NAME:?run by azd after provisioning (azd provision / azd up)}"
: "${AZURE_FUNCTION_APP_NAME:?}" "${AZURE_RESOURCE_GROUP:?}" "${PUBLIC_ORIGIN:?}"
: "${TWILIO_AUTH_TOKEN_KV_NAME:?}" "${TWILIO_API_KEY_KV_NAME:?}"
root=$(cd "$(dirname "$0")/../.." && pwd)

secret_exists() {
    az keyvault secret show --vault-name "$AZURE_KEY_VAULT_NAME" --name "$1" \
        --query id --output tsv >/dev/null 2>&1
}

interactive=false
if [ -t 0 ] && command -v az >/dev/null 2>&1; then
    interactive=true
fi

set_secret() {  # $1 Key Vault entry, $2 what it is
    if [ "$interactive" = true ]; then
        if secret_exists "$1"; then
            echo "Key Vault: $1 is set (rotate it as docs/deploy.md says)."
            return 0
        fi
        printf 'Paste the %s (input hidden; empty to skip): ' "$2"
        stty -echo
        IFS= read -r value || value=""
        stty echo
        echo
        if [ -n "$value" ]; then
            printf '%s' "$value" | az keyvault secret set --vault-name "$AZURE_KEY_VAULT_NAME" \
                --name "$1" --file /dev/stdin --encoding utf-8 --output none
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
if [ -f "$root/twiml/function.json" ]; then
    echo "  Incoming SMS: your number's Messaging configuration (or your Messaging Service's"
    echo "  integration), 'A message comes in': Webhook, HTTP POST, $PUBLIC_ORIGIN/api/twiml"
    echo "    curl -X POST https://api.twilio.com/2010-04-01/Accounts/\$TWILIO_ACCOUNT_SID/IncomingPhoneNumbers/<PN...>.json \\"
    echo "      -u \"\$TWILIO_ACCOUNT_SID:\$TWILIO_AUTH_TOKEN\" --data-urlencode \"SmsUrl=$PUBLIC_ORIGIN/api/twiml\" -d SmsMethod=POST"
fi
if [ -f "$root/voice/function.json" ]; then
    echo "  Voice SDK calls: your TwiML App's Voice Request URL: HTTP POST $PUBLIC_ORIGIN/api/voice"
    echo "    curl -X POST https://api.twilio.com/2010-04-01/Accounts/\$TWILIO_ACCOUNT_SID/Applications/<AP...>.json \\"
    echo "      -u \"\$TWILIO_ACCOUNT_SID:\$TWILIO_AUTH_TOKEN\" --data-urlencode \"VoiceUrl=$PUBLIC_ORIGIN/api/voice\" -d VoiceMethod=POST"
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

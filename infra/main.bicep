// The whole deployment: one resource group holding the function app on Flex
// Consumption and everything it needs. `azd up` provisions it (parameters come
// from main.parameters.json, which reads the azd environment); see docs/deploy.md.
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('azd environment name: names the resource group and seeds every resource name.')
param environmentName string

@minLength(1)
@description('Azure region of every resource; it must offer Flex Consumption (docs/deploy.md).')
param location string

@description('Object ID of whoever runs azd (AZURE_PRINCIPAL_ID): may set the Twilio secrets in Key Vault.')
param principalId string = ''

@allowed([
  'User'
  'ServicePrincipal'
])
@description('Kind of principalId: a person, or a pipeline\'s service principal.')
param principalType string = 'User'

@minLength(34)
@maxLength(34)
@description('TWILIO_ACCOUNT_SID: the Twilio account (AC...). Not a secret; the auth token goes to Key Vault.')
param twilioAccountSid string

@description('TWILIO_FROM_NUMBER: default caller ID and SMS sender, E.164 (+14155552671).')
param twilioFromNumber string

@description('TWILIO_MESSAGING_SERVICE_SID (MG...), or empty.')
param twilioMessagingServiceSid string = ''

@description('ALLOWED_FROM_NUMBERS: E.164 numbers a request may choose as caller ID or sender, comma-separated; empty: only the default sender.')
param allowedFromNumbers string = ''

@description('TWILIO_TWIML_APP_SID (AP...): the TwiML App whose Voice URL is the app\'s /api/voice; empty: voice_token answers 500.')
param twilioTwimlAppSid string = ''

@description('TWILIO_PUSH_CREDENTIAL_SID (CR...): APNs/FCM credential that wakes the mobile app for incoming calls, or empty.')
param twilioPushCredentialSid string = ''

@description('TWILIO_API_KEY_SID (SK...), or empty to use the auth token for REST. Its secret goes to Key Vault.')
param twilioApiKeySid string = ''

@minLength(2)
@description('ALLOWED_COUNTRIES: ISO 3166 alpha-2 codes calls and SMS may go to (US,CA). Required: "any country" is the usual SMS-pumping setup.')
param allowedCountries string

@description('ALLOW_PREMIUM_NUMBERS: allow premium-rate, shared-cost, personal and non-geographic destinations.')
param allowPremiumNumbers bool = false

@description('PUBLIC_BASE_URL: the public origin Twilio reaches (a custom domain or proxy). Empty: the app\'s own https://<default host name>.')
param publicBaseUrl string = ''

@description('SMS_REPLY_MESSAGE: reply to incoming SMS, or empty for none.')
param smsReplyMessage string = ''

@allowed([
  'google'
  'azureActiveDirectory'
])
@description('Identity provider the mobile app signs its users in with (App Service Authentication): Google, or Microsoft Entra ID.')
param authProvider string

@minLength(1)
@description('AUTH_CLIENT_ID: Google: the web (server) OAuth client ID; Entra: the application (client) ID of the API\'s app registration.')
param authClientId string

@description('AUTH_MOBILE_CLIENT_IDS: the mobile app\'s other client IDs, comma-separated: Google: its iOS and Android OAuth client IDs; Entra: the mobile app\'s own registration, if not the API\'s. Empty: none.')
param authMobileClientIds string = ''

@description('Microsoft Entra tenant of authClientId (azureActiveDirectory only). Empty: this subscription\'s tenant.')
param authTenantId string = ''

@description('GitHub repository (owner/name) whose main branch may deploy the app through OpenID Connect. Empty: no deployment identity.')
param githubRepository string = ''

// Flex Consumption takes 40 to 1000 ("Scale" in
// https://learn.microsoft.com/azure/azure-functions/flex-consumption-plan#considerations).
@minValue(40)
@maxValue(1000)
@description('Most instances Flex Consumption may run (40 to 1000): caps cost and the rate a leaked key can spend at.')
param maximumInstanceCount int = 40

// Push notifications (Azure Notification Hubs; docs/deploy.md, "Push notifications").
@allowed([
  'Free'
  'Basic'
  'Standard'
])
@description('NOTIFICATION_HUBS_SKU: the Notification Hubs tier. Free: 1 million pushes and 500 devices a month, no SLA; Basic or Standard for more.')
param notificationHubsSku string = 'Free'

@allowed([
  'none'
  'sender'
  'body'
])
@description('PUSH_PREVIEW: what a push shows on the lock screen: none, the sender, or the start of the text.')
param pushPreview string = 'none'

@allowed([
  'sandbox'
  'production'
])
@description('APNS_ENVIRONMENT: APNs endpoint: sandbox for development builds, production for TestFlight and App Store builds.')
param apnsEnvironment string = 'production'

@description('APNS_KEY_ID: Key ID of the APNs auth key (.p8). Empty (and no certificate): no APNs credential, pushes to iOS devices fail.')
param apnsKeyId string = ''

@description('APNS_TEAM_ID: your Apple Developer Team ID (with APNS_KEY_ID).')
param apnsTeamId string = ''

@description('APNS_BUNDLE_ID: the iOS app\'s bundle ID (with APNS_KEY_ID).')
param apnsBundleId string = ''

@secure()
@description('APNS_TOKEN: the .p8 key\'s body without its BEGIN/END lines. Set it with `azd env set-secret` (docs/deploy.md).')
param apnsToken string = ''

@secure()
@description('APNS_CERTIFICATE: instead of a token key, a .p12 APNs certificate, base64. Set it with `azd env set-secret`.')
param apnsCertificate string = ''

@secure()
@description('APNS_CERTIFICATE_KEY: that certificate\'s password.')
param apnsCertificateKey string = ''

@description('FIREBASE_PROJECT_ID: the Firebase project ID. Empty: no FCM v1 credential, pushes to Android devices fail.')
param fcmV1ProjectId string = ''

@description('FIREBASE_CLIENT_EMAIL: the Firebase service account\'s client_email (with FIREBASE_PROJECT_ID).')
param fcmV1ClientEmail string = ''

@secure()
@description('FIREBASE_PRIVATE_KEY: the service account\'s private_key, as in its JSON file. Set it with `azd env set-secret`.')
param fcmV1PrivateKey string = ''

var tags = {
  'azd-env-name': environmentName
}
// Deterministic and unique per subscription, environment and region, as azd's templates name resources.
var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))

resource resourceGroup 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: 'rg-${environmentName}'
  location: location
  tags: tags
}

module identity 'app/identity.bicep' = {
  name: 'identity'
  scope: resourceGroup
  params: {
    name: 'id-${resourceToken}'
    location: location
    tags: tags
  }
}

module monitoring 'app/monitoring.bicep' = {
  name: 'monitoring'
  scope: resourceGroup
  params: {
    logAnalyticsName: 'log-${resourceToken}'
    applicationInsightsName: 'appi-${resourceToken}'
    location: location
    tags: tags
    publisherPrincipalId: identity.outputs.principalId
  }
}

module storage 'app/storage.bicep' = {
  name: 'storage'
  scope: resourceGroup
  params: {
    name: 'st${resourceToken}'
    location: location
    tags: tags
    deploymentContainerName: 'app-package'
    appPrincipalId: identity.outputs.principalId
    pushQueueName: 'push-events'
  }
}

module vault 'app/vault.bicep' = {
  name: 'vault'
  scope: resourceGroup
  params: {
    name: 'kv-${resourceToken}'
    location: location
    tags: tags
    readerPrincipalId: identity.outputs.principalId
    officerPrincipalId: principalId
    officerPrincipalType: principalType
  }
}

module notificationHubs 'app/notification-hubs.bicep' = {
  name: 'notification-hubs'
  scope: resourceGroup
  params: {
    namespaceName: 'ntfns-${resourceToken}'
    hubName: 'ntf-${resourceToken}'
    location: location
    tags: tags
    sku: notificationHubsSku
    keyVaultName: vault.outputs.name
    apnsEnvironment: apnsEnvironment
    apnsKeyId: apnsKeyId
    apnsTeamId: apnsTeamId
    apnsBundleId: apnsBundleId
    apnsToken: apnsToken
    apnsCertificate: apnsCertificate
    apnsCertificateKey: apnsCertificateKey
    fcmV1ProjectId: fcmV1ProjectId
    fcmV1ClientEmail: fcmV1ClientEmail
    fcmV1PrivateKey: fcmV1PrivateKey
  }
}

module functionApp 'app/function-app.bicep' = {
  name: 'function-app'
  scope: resourceGroup
  params: {
    name: 'func-${resourceToken}'
    planName: 'plan-${resourceToken}'
    location: location
    tags: tags
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    storageAccountName: storage.outputs.name
    deploymentContainerName: storage.outputs.deploymentContainerName
    applicationInsightsConnectionString: monitoring.outputs.connectionString
    keyVaultName: vault.outputs.name
    maximumInstanceCount: maximumInstanceCount
    twilioAccountSid: twilioAccountSid
    twilioFromNumber: twilioFromNumber
    twilioMessagingServiceSid: twilioMessagingServiceSid
    allowedFromNumbers: allowedFromNumbers
    twilioApiKeySid: twilioApiKeySid
    twilioTwimlAppSid: twilioTwimlAppSid
    twilioPushCredentialSid: twilioPushCredentialSid
    allowedCountries: allowedCountries
    allowPremiumNumbers: allowPremiumNumbers
    publicBaseUrl: publicBaseUrl
    smsReplyMessage: smsReplyMessage
    authProvider: authProvider
    authClientId: authClientId
    authMobileClientIds: authMobileClientIds
    authTenantId: empty(authTenantId) ? tenant().tenantId : authTenantId
    notificationHubName: notificationHubs.outputs.hubName
    notificationHubsVaultEntry: notificationHubs.outputs.connectionVaultEntry
    pushPreview: pushPreview
  }
}

module deployIdentity 'app/github-deploy.bicep' = if (!empty(githubRepository)) {
  name: 'github-deploy'
  scope: resourceGroup
  params: {
    name: 'id-deploy-${resourceToken}'
    location: location
    tags: tags
    githubRepository: githubRepository
    functionAppName: functionApp.outputs.name
  }
}

// Outputs land in the azd environment (`azd env get-values`); none is a secret.
output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = resourceGroup.name
output AZURE_FUNCTION_APP_NAME string = functionApp.outputs.name
output AZURE_KEY_VAULT_NAME string = vault.outputs.name
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
output AZURE_APPLICATION_INSIGHTS_NAME string = monitoring.outputs.applicationInsightsName
output PUBLIC_ORIGIN string = functionApp.outputs.publicOrigin
// Names of the Key Vault entries the app's Key Vault references point at (names, not values).
output TWILIO_AUTH_TOKEN_KV_NAME string = functionApp.outputs.authTokenVaultEntry
output TWILIO_API_KEY_KV_NAME string = functionApp.outputs.apiKeyVaultEntry
output NOTIFICATION_HUBS_NAMESPACE string = notificationHubs.outputs.namespaceName
output NOTIFICATION_HUBS_HUB string = notificationHubs.outputs.hubName
output NOTIFICATION_HUBS_RULE string = notificationHubs.outputs.ruleName
output PUSH_QUEUE_NAME string = storage.outputs.pushQueueName
output AZURE_DEPLOY_CLIENT_ID string = empty(githubRepository) ? '' : deployIdentity.outputs.clientId

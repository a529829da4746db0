// The function app: Flex Consumption (FC1, Linux), Python 3.13, the v1
// function.json model. Every app setting the app declares (shared/settings.py)
// is set here or listed in docs/deploy.md as left to the user; a test holds
// the two together (tests/test_infra_settings.py).
param name string
param planName string
param location string
param tags object
@description('Resource ID of the app\'s user-assigned identity.')
param identityId string
@description('Client ID of that identity: identity-based connections name it.')
param identityClientId string
param storageAccountName string
param deploymentContainerName string
param applicationInsightsConnectionString string
param keyVaultName string
param maximumInstanceCount int
param twilioAccountSid string
param twilioFromNumber string
param twilioMessagingServiceSid string
param allowedFromNumbers string
param twilioApiKeySid string
param twilioTwimlAppSid string
param twilioPushCredentialSid string
param allowedCountries string
param allowPremiumNumbers bool
param publicBaseUrl string
param smsReplyMessage string
@allowed([
  'google'
  'azureActiveDirectory'
])
param authProvider string
param authClientId string
@description('Other client IDs of the mobile app, comma-separated (main.bicep\'s authMobileClientIds).')
param authMobileClientIds string
param authTenantId string
@description('Name of the notification hub the app pushes through.')
param notificationHubName string
@description('Key Vault entry holding the hub\'s Listen+Send connection string (written by notification-hubs.bicep).')
param notificationHubsVaultEntry string
@allowed([
  'none'
  'sender'
  'body'
])
param pushPreview string

// Key Vault entries holding the Twilio secrets (names only; the values are set
// by whoever deploys, docs/deploy.md).
var authTokenVaultEntry = 'twilio-auth-token'
var apiKeyVaultEntry = 'twilio-api-key-secret'

// Functions Twilio calls (webhooks): signed by Twilio, not by a signed-in
// user, so App Service Authentication lets them through unauthenticated. Every
// function.json with authLevel anonymous must be here (a test checks it).
var twilioWebhookPaths = [
  '/api/twiml'
  '/api/status_callback'
  '/api/voice'
  '/api/call_events'
]

// The mobile app's sign-in: it signs the user in with the provider's own SDK
// and hands the provider's token to App Service Authentication (client-directed
// flow), which checks the token's audience and needs no secret. Client-directed
// sign-in is documented for aad and google (among others), not for apple, so
// Sign in with Apple is not offered: its provider is a preview that also needs
// a client secret JWT renewed at least every six months
// (https://learn.microsoft.com/azure/app-service/configure-authentication-customize-sign-in-out#use-client-directed-sign-in ,
// https://learn.microsoft.com/azure/app-service/configure-authentication-provider-apple).
//
// Google: an ID token's `aud` is the client ID the app signed in with (the iOS
// client's on iOS, the web client's on Android), so every client ID the app
// uses is an allowed audience (Google, "Authenticate with a backend server":
// https://developers.google.com/identity/sign-in/ios/backend-auth ,
// https://developers.google.com/identity/sign-in/android/backend-auth ;
// https://learn.microsoft.com/azure/app-service/configure-authentication-provider-google).
//
// Microsoft Entra ID: without defaultAuthorizationPolicy.allowedApplications
// any application in the tenant may get a token for this API and call it;
// with it, only access tokens whose `appid`/`azp` is the API's registration
// or the mobile app's pass, others get 403 ("Use a built-in authorization policy":
// https://learn.microsoft.com/azure/app-service/configure-authentication-provider-aad#use-a-built-in-authorization-policy).
var mobileClientIds = empty(authMobileClientIds) ? [] : split(replace(authMobileClientIds, ' ', ''), ',')
var identityProviders = {
  google: {
    google: {
      enabled: true
      registration: {
        clientId: authClientId
      }
      validation: {
        allowedAudiences: concat([
          authClientId
        ], mobileClientIds)
      }
    }
  }
  azureActiveDirectory: {
    azureActiveDirectory: {
      enabled: true
      registration: {
        clientId: authClientId
        openIdIssuer: '${environment().authentication.loginEndpoint}${authTenantId}/v2.0'
      }
      validation: {
        allowedAudiences: [
          'api://${authClientId}'
          authClientId
        ]
        defaultAuthorizationPolicy: {
          allowedApplications: concat([
            authClientId
          ], mobileClientIds)
        }
      }
    }
  }
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  // checkov:skip=CKV_AZURE_225: Flex Consumption offers zone redundancy only in some regions and fails elsewhere; docs/deploy.md, "Going further", says how to turn it on.
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    tier: 'FlexConsumption'
    name: 'FC1'
  }
  properties: {
    reserved: true
  }
}

// No siteConfig and no client certificate setting on the site: Flex
// Consumption rejects site properties other plans take (its deprecations list
// `ftpsState`, `alwaysOn`, `linuxFxVersion`, ...:
// https://learn.microsoft.com/azure/azure-functions/functions-app-settings#flex-consumption-plan-deprecations),
// does not support certificate features ("Considerations":
// https://learn.microsoft.com/azure/azure-functions/flex-consumption-plan#considerations),
// and no Microsoft Flex sample sets `minTlsVersion` or `http20Enabled`
// (https://github.com/Azure-Samples/azure-functions-flex-consumption-samples/blob/main/IaC/bicep/main.bicep).
// The platform's defaults stand: TLS 1.2 at least, no client certificates
// (https://learn.microsoft.com/azure/app-service/overview-tls). tests/test_infra_flex.py holds this.
resource functionApp 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_222: Twilio and the mobile app reach the functions over the internet: public access is the product. Callers are checked by function key and App Service Authentication, Twilio by its signature.
  // checkov:skip=CKV_AZURE_17: client certificates would lock out Twilio's webhooks and the mobile app; see CKV_AZURE_222 for how callers are checked.
  // checkov:skip=CKV_AZURE_212: Flex Consumption scales from zero per request; instances are the platform's to replace, not a plan minimum.
  // checkov:skip=CKV_AZURE_213: the app has no health endpoint to point a health check at, and Flex Consumption instances live only while they serve.
  // checkov:skip=CKV_AZURE_78: Flex Consumption has no FTP(S) and rejects `ftpsState` ("FTPS not supported", Flex Consumption plan deprecations).
  // checkov:skip=CKV_AZURE_18: HTTP/2 on the front end is undocumented on Flex Consumption and set by no Microsoft Flex sample, so `http20Enabled` stays at the platform default; Twilio and the mobile app speak HTTP/1.1.
  // checkov:skip=CKV_AZURE_67: the function app's form of CKV_AZURE_18: `http20Enabled` stays at the platform default, as explained there.
  // checkov:skip=CKV_AZURE_15: `minTlsVersion` is set by no Microsoft Flex sample; the platform's default minimum is already TLS 1.2 (docs/deploy.md says how to check it after deploying).
  name: name
  location: location
  // azd deploys the service named `api` in azure.yaml to the app carrying this tag.
  tags: union(tags, {
    'azd-service-name': 'api'
  })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    keyVaultReferenceIdentity: identityId
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: 'https://${storageAccountName}.blob.${environment().suffixes.storage}/${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: 2048
      }
      runtime: {
        name: 'python'
        version: '3.13'
      }
    }
  }
}

// Deployments authenticate with Microsoft Entra ID (azd, or the workflow's
// OpenID Connect login), never with a publish profile's user name and password:
// the `scm` policy is the switch for every deployment method but FTP, and FTP
// has no switch to turn off here because Flex Consumption has no FTP(S) at all
// (its deprecations list `ftpsState`: "FTPS not supported"). Microsoft,
// "Disable basic authentication in App Service deployments":
// https://learn.microsoft.com/azure/app-service/configure-basic-auth-disable
resource scmBasicAuth 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: functionApp
  name: 'scm'
  properties: {
    allow: false
  }
}

// Flex Consumption takes the runtime from functionAppConfig above and refuses
// FUNCTIONS_WORKER_RUNTIME and FUNCTIONS_EXTENSION_VERSION (it runs Functions
// 4.x only), so neither is set. Secrets are Key Vault references only.
resource appSettings 'Microsoft.Web/sites/config@2024-04-01' = {
  // checkov:skip=CKV_AZURE_13: authentication is configured in the authsettingsV2 resource below.
  // checkov:skip=CKV_AZURE_63: checkov applies its site-configuration checks to every Microsoft.Web/sites/config resource; this one holds app settings. HTTP logs are a Windows App Service feature; requests are logged to Application Insights.
  // checkov:skip=CKV_AZURE_65: checkov applies its site-configuration checks to every Microsoft.Web/sites/config resource; this one holds app settings. Detailed error pages are an IIS feature; the app answers problem+json itself.
  // checkov:skip=CKV_AZURE_66: checkov applies its site-configuration checks to every Microsoft.Web/sites/config resource; this one holds app settings. Failed request tracing is an IIS feature; failures are in Application Insights.
  // checkov:skip=CKV_AZURE_80: checkov applies its site-configuration checks to every Microsoft.Web/sites/config resource; this one holds app settings. The app runs Python, not .NET.
  // checkov:skip=CKV_AZURE_88: checkov applies its site-configuration checks to every Microsoft.Web/sites/config resource; this one holds app settings. Flex Consumption deploys from a blob container and mounts no Azure Files share.
  // checkov:skip=CKV_AZURE_222: checkov applies its site-configuration checks to every Microsoft.Web/sites/config resource; this one holds app settings; public access is the site's, explained there.
  parent: functionApp
  name: 'appsettings'
  properties: union({
    AzureWebJobsStorage__credential: 'managedidentity'
    AzureWebJobsStorage__clientId: identityClientId
    AzureWebJobsStorage__blobServiceUri: 'https://${storageAccountName}.blob.${environment().suffixes.storage}'
    AzureWebJobsStorage__queueServiceUri: 'https://${storageAccountName}.queue.${environment().suffixes.storage}'
    AzureWebJobsStorage__tableServiceUri: 'https://${storageAccountName}.table.${environment().suffixes.storage}'
    // Delivery status (shared/store.py): its own identity-based connection, in the
    // same account today; point it elsewhere (with the table role there) to move it.
    STATE_STORAGE__tableServiceUri: 'https://${storageAccountName}.table.${environment().suffixes.storage}'
    STATE_STORAGE__credential: 'managedidentity'
    STATE_STORAGE__clientId: identityClientId
    APPLICATIONINSIGHTS_CONNECTION_STRING: applicationInsightsConnectionString
    APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
    TWILIO_ACCOUNT_SID: twilioAccountSid
    TWILIO_AUTH_TOKEN: '@Microsoft.KeyVault(VaultName=${keyVaultName};SecretName=${authTokenVaultEntry})'
    TWILIO_FROM_NUMBER: twilioFromNumber
    TWILIO_MESSAGING_SERVICE_SID: twilioMessagingServiceSid
    ALLOWED_FROM_NUMBERS: allowedFromNumbers
    PUBLIC_BASE_URL: empty(publicBaseUrl) ? 'https://${functionApp.properties.defaultHostName}' : publicBaseUrl
    ALLOWED_COUNTRIES: allowedCountries
    ALLOW_PREMIUM_NUMBERS: allowPremiumNumbers ? 'true' : 'false'
    TWILIO_VALIDATE_SIGNATURE: 'true'
    REQUIRE_SIGNED_IN_USER: 'true'
    SMS_REPLY_MESSAGE: smsReplyMessage
    TWILIO_TWIML_APP_SID: twilioTwimlAppSid
    TWILIO_PUSH_CREDENTIAL_SID: twilioPushCredentialSid
    NOTIFICATION_HUBS_CONNECTION: '@Microsoft.KeyVault(VaultName=${keyVaultName};SecretName=${notificationHubsVaultEntry})'
    NOTIFICATION_HUBS_HUB: notificationHubName
    PUSH_PREVIEW: pushPreview
  }, empty(twilioApiKeySid) ? {} : {
    TWILIO_API_KEY_SID: twilioApiKeySid
    TWILIO_API_KEY_SECRET: '@Microsoft.KeyVault(VaultName=${keyVaultName};SecretName=${apiKeyVaultEntry})'
  })
}

// App Service Authentication: every request needs a signed-in user of the
// mobile app's provider (401 otherwise), except Twilio's webhooks.
resource authentication 'Microsoft.Web/sites/config@2024-04-01' = {
  // checkov:skip=CKV_AZURE_13: authentication is on: this resource is authsettingsV2 (platform.enabled); the check reads the retired authsettings shape.
  // checkov:skip=CKV_AZURE_63: checkov applies its site-configuration checks to every Microsoft.Web/sites/config resource; this one holds the authentication settings. HTTP logs are a Windows App Service feature; requests are logged to Application Insights.
  // checkov:skip=CKV_AZURE_65: checkov applies its site-configuration checks to every Microsoft.Web/sites/config resource; this one holds the authentication settings. Detailed error pages are an IIS feature; the app answers problem+json itself.
  // checkov:skip=CKV_AZURE_66: checkov applies its site-configuration checks to every Microsoft.Web/sites/config resource; this one holds the authentication settings. Failed request tracing is an IIS feature; failures are in Application Insights.
  // checkov:skip=CKV_AZURE_80: checkov applies its site-configuration checks to every Microsoft.Web/sites/config resource; this one holds the authentication settings. The app runs Python, not .NET.
  // checkov:skip=CKV_AZURE_88: checkov applies its site-configuration checks to every Microsoft.Web/sites/config resource; this one holds the authentication settings. Flex Consumption deploys from a blob container and mounts no Azure Files share.
  // checkov:skip=CKV_AZURE_222: checkov applies its site-configuration checks to every Microsoft.Web/sites/config resource; this one holds the authentication settings; public access is the site's, explained there.
  parent: functionApp
  name: 'authsettingsV2'
  properties: {
    platform: {
      enabled: true
    }
    globalValidation: {
      requireAuthentication: true
      unauthenticatedClientAction: 'Return401'
      excludedPaths: twilioWebhookPaths
    }
    httpSettings: {
      requireHttps: true
    }
    identityProviders: identityProviders[authProvider]
    login: {
      tokenStore: {
        enabled: false
      }
    }
  }
}

output name string = functionApp.name
output publicOrigin string = empty(publicBaseUrl) ? 'https://${functionApp.properties.defaultHostName}' : publicBaseUrl
output authTokenVaultEntry string = authTokenVaultEntry
output apiKeyVaultEntry string = apiKeyVaultEntry

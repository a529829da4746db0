// Push notifications: an Azure Notification Hubs namespace and hub, the
// credentials it needs to reach Apple (APNs) and Google (FCM v1), and the
// connection string the app sends with, kept in Key Vault.
//
// The app speaks to the hub with a SAS connection string only: Notification
// Hubs has no Microsoft Entra data-plane roles
// (https://learn.microsoft.com/azure/notification-hubs/notification-hubs-push-notification-security).
// The app's rule holds Listen (it creates and deletes installations) and Send,
// not Manage; only a hub-level rule may send, so the rule is on the hub.
param namespaceName string
param hubName string
param location string
param tags object

// Monthly per namespace (Notification Hubs FAQ and pricing): Free 1 million
// pushes and 500 active devices, no SLA; Basic 10 million and 200,000 devices;
// Standard 10 million and 10 million devices, plus telemetry, scheduled pushes
// and bulk operations (docs/deploy.md, "Push notifications").
@allowed([
  'Free'
  'Basic'
  'Standard'
])
param sku string

@description('Key Vault that keeps the app\'s connection string (the app reads it through a Key Vault reference).')
param keyVaultName string

@allowed([
  'sandbox'
  'production'
])
@description('APNs endpoint: sandbox for development builds (Xcode), production for TestFlight and App Store builds.')
param apnsEnvironment string

@description('APNs token authentication: the .p8 key\'s Key ID; empty: no token credential.')
param apnsKeyId string
@description('APNs: your Apple Developer Team ID.')
param apnsTeamId string
@description('APNs: the iOS app\'s bundle ID.')
param apnsBundleId string
@secure()
@description('APNs: the .p8 key\'s body, without its BEGIN/END lines.')
param apnsToken string
@secure()
@description('APNs certificate authentication (instead of a token): the .p12 certificate, base64; empty: none.')
param apnsCertificate string
@secure()
@description('Password of that .p12 certificate.')
param apnsCertificateKey string

@description('FCM v1: the Firebase project ID; empty: no FCM v1 credential.')
param fcmV1ProjectId string
@description('FCM v1: the service account\'s client_email.')
param fcmV1ClientEmail string
@secure()
@description('FCM v1: the service account\'s private_key (PEM; `\\n` escapes as in its JSON file are turned into line breaks).')
param fcmV1PrivateKey string

// APNs endpoints: https://learn.microsoft.com/azure/notification-hubs/notification-hubs-push-notification-http2-token-authentication
var apnsEndpoints = {
  sandbox: 'https://api.development.push.apple.com:443/3/device'
  production: 'https://api.push.apple.com:443/3/device'
}
var apnsWithToken = !empty(apnsKeyId)
var apnsWithCertificate = empty(apnsKeyId) && !empty(apnsCertificate)
var withFcmV1 = !empty(fcmV1ProjectId)
// The rule the app uses, and the Key Vault entry holding its connection string.
var appRuleName = 'app-listen-send'
var connectionVaultEntry = 'notification-hubs-connection'

resource namespace 'Microsoft.NotificationHubs/namespaces@2023-09-01' = {
  name: namespaceName
  location: location
  tags: tags
  sku: {
    name: sku
  }
  properties: {
    namespaceType: 'NotificationHub'
  }
}

// The hub is the one resource on a preview API version: 2023-10-01-preview is
// the only version that sets `fcmV1Credential` (2023-09-01, the latest stable
// one, has only `gcmCredential`, FCM's legacy API, unsupported since June
// 2024: https://learn.microsoft.com/azure/notification-hubs/firebase-migration-rest ;
// https://learn.microsoft.com/azure/templates/microsoft.notificationhubs/change-log/namespaces/notificationhubs).
// It is used whether or not FCM v1 credentials are given: ARM refuses one
// template declaring the same resource twice even under opposite conditions
// (https://github.com/Azure/bicep/issues/1410), and every `azd provision`
// PUTs the hub whole, so one declaration keeps the credentials the same
// from one provision to the next. Without a platform's credentials the hub
// deploys, and pushes to that platform's devices fail (docs/deploy.md).
resource hub 'Microsoft.NotificationHubs/namespaces/notificationHubs@2023-10-01-preview' = {
  parent: namespace
  name: hubName
  location: location
  tags: tags
  properties: union(apnsWithToken ? {
    apnsCredential: {
      properties: {
        endpoint: apnsEndpoints[apnsEnvironment]
        keyId: apnsKeyId
        appId: apnsTeamId
        appName: apnsBundleId
        token: apnsToken
      }
    }
  } : {}, apnsWithCertificate ? {
    apnsCredential: {
      properties: {
        endpoint: apnsEndpoints[apnsEnvironment]
        apnsCertificate: apnsCertificate
        certificateKey: apnsCertificateKey
      }
    }
  } : {}, withFcmV1 ? {
    fcmV1Credential: {
      properties: {
        projectId: fcmV1ProjectId
        clientEmail: fcmV1ClientEmail
        privateKey: replace(fcmV1PrivateKey, '\\n', '\n')
      }
    }
  } : {})
}

resource appRule 'Microsoft.NotificationHubs/namespaces/notificationHubs/authorizationRules@2023-09-01' = {
  parent: hub
  name: appRuleName
  properties: {
    rights: [
      'Listen'
      'Send'
    ]
  }
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

// The only secret Bicep writes: Azure makes it (the rule's key), so no person
// handles it. Each provision writes it again from the rule's current key; the
// value never reaches an output or a parameter.
resource connectionSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  // checkov:skip=CKV_AZURE_41: the secret is a copy of the rule's key, rewritten by every provision; an expiry would cut push off without the key changing. Rotation is the key's (docs/deploy.md, "Rotating keys and secrets").
  parent: vault
  name: connectionVaultEntry
  properties: {
    contentType: 'text/plain'
    value: appRule.listKeys().primaryConnectionString
  }
}

output namespaceName string = namespace.name
output hubName string = hub.name
output ruleName string = appRule.name
output connectionVaultEntry string = connectionSecret.name

// The app's storage account: the Functions host's own storage, the Flex
// Consumption deployment package, the app's delivery-status tables and the
// queue of push events. Shared keys are off: only Microsoft Entra identities
// with a data role get in.
param name string
param location string
param tags object
param deploymentContainerName string
@description('Principal of the app\'s identity: the only one given data roles here.')
param appPrincipalId string
@description('Queue of push events: the app enqueues them, push_notify\'s queue trigger reads them.')
param pushQueueName string

// Built-in roles (https://learn.microsoft.com/azure/role-based-access-control/built-in-roles/storage).
// The host takes blob leases and reads the deployment package: Blob Data Owner
// "covers the basic needs of Functions host storage"; Queue Data Contributor
// on the account is needed only "in some situations, as with use of the blob
// trigger", which the app has none of (Microsoft, "Connecting to host storage
// with an identity": https://learn.microsoft.com/azure/azure-functions/functions-reference#connecting-to-host-storage-with-an-identity).
// The app keeps delivery status in tables. Its queue gets the roles Microsoft
// gives each binding, on that queue only: a queue trigger, Queue Data Reader
// and Message Processor; writing messages, Message Sender ("Queue storage
// trigger", identity-based connections, whose table is
// includes/functions-queue-permissions.md:
// https://learn.microsoft.com/azure/azure-functions/functions-bindings-storage-queue-trigger#identity-based-connections).
var roles = {
  blobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  tableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  queueDataReader: '19e7f393-937e-4f77-808e-94535e297925'
  queueDataMessageProcessor: '8a0f0c08-91a1-4084-bc3d-661d67233fed'
  queueDataMessageSender: 'c6a89b2d-59bc-44d0-9896-0f6e12d7b80a'
}
// Push events: the trigger reads and deletes them; the app (shared/push.py)
// adds them. After maxDequeueCount (5) failed tries the host moves a message
// to `<queue>-poison`, created here so that adding to it is all the host does.
var pushQueueRoles = [
  roles.queueDataReader
  roles.queueDataMessageProcessor
  roles.queueDataMessageSender
]

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_35: Flex Consumption without a virtual network reaches it over its public endpoint; every access needs a Microsoft Entra identity holding a data role. docs/deploy.md, "Going further", adds VNet integration and private endpoints (shared keys are off).
  // checkov:skip=CKV_AZURE_59: as for CKV_AZURE_35: the public endpoint stays on without a virtual network; shared keys and anonymous blob access are off.
  // checkov:skip=CKV_AZURE_206: locally redundant: it holds the host's state, the deployment package (rebuilt from git) and delivery status (Twilio keeps the authoritative record); geo-replication would double the cost for nothing that cannot be rebuilt.
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    accessTier: 'Hot'
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
  }
}

// Child resources are declared with `parent`, not nested: the offline type
// check (tests/infra_checks/typecheck.py, through pycep-parser) sees only
// top-level declarations.
resource blobServices 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: 7
    }
  }
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobServices
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource queueServices 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource pushQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueServices
  name: pushQueueName
}

resource pushPoisonQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueServices
  name: '${pushQueueName}-poison'
}

resource blobDataOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, appPrincipalId, roles.blobDataOwner)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.blobDataOwner)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource pushQueueGrants 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for role in pushQueueRoles: {
  name: guid(pushQueue.id, appPrincipalId, role)
  scope: pushQueue
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', role)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}]

resource pushPoisonQueueSender 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(pushPoisonQueue.id, appPrincipalId, roles.queueDataMessageSender)
  scope: pushPoisonQueue
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.queueDataMessageSender)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource tableDataContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, appPrincipalId, roles.tableDataContributor)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.tableDataContributor)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

output name string = storage.name
output deploymentContainerName string = deploymentContainerName
output pushQueueName string = pushQueue.name

// Key Vault in RBAC mode for the Twilio secrets. Bicep creates no secret and
// takes none as a parameter: whoever deploys sets them (docs/deploy.md), so no
// secret value passes through a parameter file, a deployment's history or an output.
param name string
param location string
param tags object
@description('Principal that reads the secrets: the app\'s identity, through Key Vault references.')
param readerPrincipalId string
@description('Principal that may set the secrets (whoever runs azd); empty: nobody here.')
param officerPrincipalId string = ''
param officerPrincipalType string = 'User'

var secretsUserRole = '4633458b-17de-408a-b874-0445c86b69e6'
var secretsOfficerRole = 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7'

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  // checkov:skip=CKV_AZURE_109: App Service resolves Key Vault references from the app's outbound addresses, which Flex Consumption without a virtual network does not fix; reads need the Key Vault Secrets User role, held by the app's identity only. docs/deploy.md, "Going further", adds VNet integration.
  // checkov:skip=CKV_AZURE_189: as for CKV_AZURE_109: the public endpoint stays on without a virtual network; RBAC decides who reads.
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: tenant().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 7
    enablePurgeProtection: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
  }
}

resource secretsUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, readerPrincipalId, secretsUserRole)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', secretsUserRole)
    principalId: readerPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource secretsOfficer 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(officerPrincipalId)) {
  name: guid(vault.id, officerPrincipalId, secretsOfficerRole)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', secretsOfficerRole)
    principalId: officerPrincipalId
    principalType: officerPrincipalType
  }
}

output name string = vault.name

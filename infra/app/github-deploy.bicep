// The identity GitHub Actions deploys with: OpenID Connect federation from one
// repository's `production` environment, allowed to publish to the function app
// and nothing else. No secret exists for it anywhere.
param name string
param location string
param tags object
@description('owner/name of the GitHub repository whose workflow deploys.')
param githubRepository string
param functionAppName string

// Website Contributor: publish to and manage the one function app.
var websiteContributorRole = 'de139f84-1756-47ae-9be6-808fbbe84772'

resource functionApp 'Microsoft.Web/sites@2024-04-01' existing = {
  name: functionAppName
}

resource deployer 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: name
  location: location
  tags: tags
}

// The subject GitHub puts in a token for a job that names `environment: production`.
resource federation 'Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials@2023-01-31' = {
  parent: deployer
  name: 'github-production'
  properties: {
    issuer: 'https://token.actions.githubusercontent.com'
    subject: 'repo:${githubRepository}:environment:production'
    audiences: [
      'api://AzureADTokenExchange'
    ]
  }
}

resource publisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(functionApp.id, deployer.id, websiteContributorRole)
  scope: functionApp
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', websiteContributorRole)
    principalId: deployer.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

output clientId string = deployer.properties.clientId

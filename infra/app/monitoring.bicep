// Application Insights over a Log Analytics workspace. Local (key) ingestion is
// off: the app's identity sends telemetry with Microsoft Entra authentication,
// so the connection string alone lets nobody write into it.
param logAnalyticsName string
param applicationInsightsName string
param location string
param tags object
@description('Principal allowed to publish telemetry (the app\'s identity).')
param publisherPrincipalId string

// Monitoring Metrics Publisher: what Entra-authenticated ingestion needs.
var metricsPublisherRole = '3913510d-42f4-4e42-8a64-420c390055eb'

resource logAnalytics 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: logAnalyticsName
  location: location
  tags: tags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: 30
  }
}

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: applicationInsightsName
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: logAnalytics.id
    DisableLocalAuth: true
  }
}

resource publisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(applicationInsights.id, publisherPrincipalId, metricsPublisherRole)
  scope: applicationInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', metricsPublisherRole)
    principalId: publisherPrincipalId
    principalType: 'ServicePrincipal'
  }
}

output connectionString string = applicationInsights.properties.ConnectionString
output applicationInsightsName string = applicationInsights.name

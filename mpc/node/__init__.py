"""The bank's node daemon and what it needs: config, manifests, policy, the job registry,
data sources, the audit log, the preprocessing store, and the analyst's client.

Modules are imported where used (`mpc.node.daemon` pulls in the whole engine), so this
package's own import stays cheap.
"""

"""Secret-sharing schemes: additive n-of-n and Shamir t-of-n."""

"""The exchange's client side: the provider agent (standard library only, no Django), which
providers may copy into their own tooling."""

"""Channel connectors: keeping the brand's transactions in sync with scenes that take orders themselves.

A marketplace storefront takes and collects its orders on the marketplace: :mod:`.marketplace` imports them
as orders already paid by the marketplace (settled later with it as a partner), reserving the brand's own
stock with every guarantee of a checkout. :mod:`.listings` publishes what each channel may sell (after
safety stock) when it changes, so listings elsewhere never oversell.
"""

"""Keeping the garbage collector off long-lived objects.

litellm's import leaves about 340,000 objects that live as long as the process (a server's
imports add more). Every full collection traverses all of them: measured at C = 128, nine full
collections cost 2.3 s of CPU over 6,000 verdicts (0.39 ms per verdict, 40% of the library's CPU)
and each one stalls the event loop for about 250 ms. ``gc.freeze()`` moves every object that exists
now to a permanent generation that collections skip (after: 29 ms each). The price: objects that
exist at the call and later become cyclic garbage are not reclaimed, so call it only when what
exists is state the process keeps: right after an import, or at the end of start-up.
"""

from __future__ import annotations

import gc


def freeze_long_lived() -> None:
    """Exclude every object that exists now from future garbage collections."""
    gc.collect()  # what is already garbage goes now, not into the permanent generation
    gc.freeze()

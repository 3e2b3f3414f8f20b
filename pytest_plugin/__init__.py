"""Tapedeck's pytest plugin (loaded through the ``tapedeck`` entry point).

``Tapedeck`` is the type of the ``tapedeck`` fixture, for annotations. Importing this
package stays cheap: pytest imports it to load the plugin.
"""

from pytest_plugin.handle import Tapedeck

__all__ = ["Tapedeck"]

"""Offline-tolerant forms (spec/offline.md): the device key, the waiting and offline pages, and
the service worker script."""

// What the portal keeps in this browser: the IndexedDB database (through idb) and the service
// worker's caches. Records arrive here already sealed (crypto.js); this module never sees a form.
//
// The database is the one earlier releases made, so that drafts and waiting saves already on a
// device are still read: the same name and version, a `keys` store keyed by user and an `items`
// store keyed by id with a `user` index. Later versions only add stores or indexes: an update
// never drops what waits here.
import { openDB } from "idb";

const DB_NAME = "fls-portal-offline";
const DB_VERSION = 1;
const CACHE_PREFIX = "fls-portal-";

let dbPromise = null;

function openDb() {
  if (!dbPromise) {
    dbPromise = openDB(DB_NAME, DB_VERSION, {
      upgrade(db) {
        if (!db.objectStoreNames.contains("keys")) {
          db.createObjectStore("keys", { keyPath: "user" });
        }
        if (!db.objectStoreNames.contains("items")) {
          const items = db.createObjectStore("items", { keyPath: "id" });
          items.createIndex("user", "user");
        }
      },
      blocking(currentVersion, blockedVersion, event) {
        // A newer script in another tab upgrades the database: let it, and start again.
        event.target.close();
        dbPromise = null;
      },
      terminated() {
        // The browser closed the connection (site data cleared, storage pressure): the next
        // read or write opens it again instead of failing until the page is reloaded.
        dbPromise = null;
      },
    });
    // An open that failed (private mode, a full disk) is tried again at the next use.
    dbPromise.catch(() => {
      dbPromise = null;
    });
  }
  return dbPromise;
}

// --- the users' keys -------------------------------------------------------------------------

export async function getKey(user) {
  const db = await openDb();
  return db.get("keys", user);
}

export async function allKeys() {
  const db = await openDb();
  return db.getAll("keys");
}

export async function putKey(record) {
  const db = await openDb();
  await db.put("keys", record);
}

export async function deleteKey(user) {
  const db = await openDb();
  await db.delete("keys", user);
}

// --- items (drafts, waiting saves, ids already sent) ------------------------------------------

export async function userItems(user) {
  const db = await openDb();
  return db.getAllFromIndex("items", "user", String(user));
}

export async function putItem(record) {
  const db = await openDb();
  await db.put("items", record);
}

export async function deleteItem(id) {
  const db = await openDb();
  await db.delete("items", id);
}

export async function deleteItems(ids) {
  // One transaction: either all of them go or none.
  const db = await openDb();
  const tx = db.transaction("items", "readwrite");
  await Promise.all([...ids.map((id) => tx.store.delete(id)), tx.done]);
}

// --- clearing --------------------------------------------------------------------------------

export function clearCaches(pagesOnly) {
  if (!("caches" in window)) {
    return Promise.resolve();
  }
  return caches.keys().then((names) =>
    Promise.all(
      names
        .filter((name) => name.indexOf(CACHE_PREFIX) === 0 && (!pagesOnly || name.indexOf(CACHE_PREFIX + "pages-") === 0))
        .map((name) => caches.delete(name))
    )
  );
}

export async function clearUser(user) {
  // Patient data must not stay on a shared ward computer: everything of this user goes.
  const records = await userItems(user);
  await deleteItems(records.map((record) => record.id));
  await deleteKey(String(user));
  await clearCaches(false);
}

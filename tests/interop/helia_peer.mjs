// A Helia peer (libp2p 2.x: TCP, Noise, Yamux, identify; bitswap; in-memory blockstore)
// driven by JSON lines, for Pinion's interop tests and benchmarks.
//
// On start it prints one line: {"peerId": "...", "addrs": ["/ip4/127.0.0.1/tcp/N/p2p/..."]}.
// Then it reads one command per line on stdin and answers one line on stdout, in order:
//   {"id": 1, "cmd": "import-file", "path": "/x", "chunkSize"?, "maxChildren"?, "rawLeaves"?, "cidVersion"?}
//        -> {"id": 1, "ok": true, "cid": "...", "size": N}
//   {"cmd": "import-dir", "path": "/d", "shardSplitThresholdBytes"?, ...same file options}
//        -> {"ok": true, "cid": "...", "sharded": bool}
//   {"cmd": "fetch", "cid": "...", "timeoutMs"?}   (over bitswap when not held; content verified by hash)
//        -> file or raw block: {"ok": true, "type": "file", "size": N, "sha256": "hex", "ms": T}
//        -> directory: {"ok": true, "type": "directory", "files": N, "size": N, "listing": "hex", "ms": T}
//           where listing = sha256 of the sorted lines "path\tcid\tsha256-of-bytes\n" of every file
//   {"cmd": "dial", "addr": "/ip4/.../p2p/..."}  -> {"ok": true, "peerId": "...", "protocols": [...], "agent": "..."}
//   {"cmd": "block", "cid": "...", "timeoutMs"?}  -> {"ok": true, "base64": "..."} (one block, over bitswap if not held)
//   {"cmd": "peers"}  -> {"ok": true, "peers": ["..."]}
//   {"cmd": "stats"}  -> {"ok": true, "blocks": N, "bytes": N}
//   {"cmd": "stop"}   -> {"ok": true}, then the process exits
// A failed command answers {"id": ..., "ok": false, "error": "..."}.
import './node20.mjs'
import { createHash } from 'node:crypto'
import { setMaxListeners } from 'node:events'
import { createReadStream } from 'node:fs'
import { readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { bitswap } from '@helia/block-brokers'
import { unixfs } from '@helia/unixfs'
import { Helia } from '@helia/utils'
import { identify } from '@libp2p/identify'
import { tcp } from '@libp2p/tcp'
import { multiaddr } from '@multiformats/multiaddr'
import { fixedSize } from 'ipfs-unixfs-importer/chunker'
import { balanced } from 'ipfs-unixfs-importer/layout'
import { MemoryBlockstore } from 'blockstore-core'
import { MemoryDatastore } from 'datastore-core'
import { createLibp2p } from 'libp2p'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'

const DEFAULT_TIMEOUT_MS = 30000
const FETCH_CONCURRENCY = 32

const libp2p = await createLibp2p({
  addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
  transports: [tcp()],
  connectionEncrypters: [noise()],
  streamMuxers: [yamux()],
  services: { identify: identify() }
})
const helia = new Helia({
  libp2p,
  blockstore: new MemoryBlockstore(),
  datastore: new MemoryDatastore(),
  blockBrokers: [bitswap()],
  routers: []
})
await helia.start()
const fs = unixfs(helia)

function send (obj) {
  process.stdout.write(JSON.stringify(obj) + '\n')
}

// importer options from a command: chunk size, links per node, raw leaves, CID version
function importOptions (cmd) {
  const opts = {}
  if (cmd.chunkSize != null) opts.chunker = fixedSize({ chunkSize: cmd.chunkSize })
  if (cmd.maxChildren != null) opts.layout = balanced({ maxChildrenPerNode: cmd.maxChildren })
  if (cmd.rawLeaves != null) opts.rawLeaves = cmd.rawLeaves
  if (cmd.cidVersion != null) opts.cidVersion = cmd.cidVersion
  if (cmd.shardSplitThresholdBytes != null) opts.shardSplitThresholdBytes = cmd.shardSplitThresholdBytes
  return opts
}

// every file and directory under root, as importer candidates with paths relative to root
async function * dirCandidates (root, rel = '') {
  const entries = await readdir(join(root, rel), { withFileTypes: true })
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
  for (const e of entries) {
    const path = rel === '' ? e.name : `${rel}/${e.name}`
    if (e.isDirectory()) {
      yield { path }
      yield * dirCandidates(root, path)
    } else if (e.isFile()) {
      yield { path, content: createReadStream(join(root, path)) }
    } else {
      throw new Error(`${join(root, path)}: only files and directories can be imported`)
    }
  }
}

async function catDigest (cid, signal) {
  const hash = createHash('sha256')
  let size = 0
  for await (const chunk of fs.cat(cid, { signal })) {
    hash.update(chunk)
    size += chunk.length
  }
  return { size, sha256: hash.digest('hex') }
}

// run fn over items, FETCH_CONCURRENCY at a time
async function forEachConcurrently (items, fn) {
  let next = 0
  async function worker () {
    while (next < items.length) await fn(items[next++])
  }
  await Promise.all(Array.from({ length: FETCH_CONCURRENCY }, worker))
}

// every file below a directory as [path, cid, sha256, size], walked level by level; listing a
// directory does not read its children (extended: false), the concurrent workers do
async function walkFiles (cid, signal) {
  const out = []
  let level = [['', cid]]
  while (level.length > 0) {
    const nextLevel = []
    await forEachConcurrently(level, async ([path, entryCid]) => {
      const isDir = entryCid.code !== raw.code && (await fs.stat(entryCid, { signal })).type === 'directory'
      if (isDir) {
        for await (const entry of fs.ls(entryCid, { signal, extended: false })) {
          nextLevel.push([path === '' ? entry.name : `${path}/${entry.name}`, entry.cid])
        }
      } else {
        const { size, sha256 } = await catDigest(entryCid, signal)
        out.push([path, entryCid.toString(), sha256, size])
      }
    })
    level = nextLevel
  }
  return out
}

async function fetchContent (cmd) {
  const cid = CID.parse(cmd.cid)
  const signal = AbortSignal.timeout(cmd.timeoutMs ?? DEFAULT_TIMEOUT_MS)
  setMaxListeners(Infinity, signal) // one listener per block in flight
  const started = performance.now()
  const stat = await fs.stat(cid, { signal })
  if (stat.type !== 'directory') {
    const digest = await catDigest(cid, signal)
    return { type: 'file', ...digest, ms: performance.now() - started }
  }
  const lines = []
  let size = 0
  for (const [path, fileCid, sha256, fileSize] of await walkFiles(cid, signal)) {
    lines.push(`${path}\t${fileCid}\t${sha256}\n`)
    size += fileSize
  }
  lines.sort()
  const listing = createHash('sha256').update(lines.join('')).digest('hex')
  return { type: 'directory', files: lines.length, size, listing, ms: performance.now() - started }
}

async function dial (cmd) {
  const ma = multiaddr(cmd.addr)
  const peer = ma.getPeerId()
  if (peer == null) throw new Error(`${cmd.addr} has no /p2p/ peer ID`)
  const timeoutMs = cmd.timeoutMs ?? 10000
  let onIdentify
  const identified = new Promise((resolve) => {
    onIdentify = (evt) => { if (evt.detail.peerId.toString() === peer) resolve(evt.detail) }
    libp2p.addEventListener('peer:identify', onIdentify)
  })
  const wasConnected = libp2p.getConnections().some((c) => c.remotePeer.toString() === peer)
  let timer
  const timeout = new Promise((resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`identify of ${cmd.addr} did not finish within ${timeoutMs} ms`)), timeoutMs)
  })
  try {
    const conn = await libp2p.dial(ma, { signal: AbortSignal.timeout(timeoutMs) })
    if (wasConnected) {
      // already identified earlier: answer from the peer store
      const known = await libp2p.peerStore.get(conn.remotePeer)
      return { peerId: peer, protocols: known.protocols, agent: new TextDecoder().decode(known.metadata.get('AgentVersion') ?? new Uint8Array()) || null }
    }
    const result = await Promise.race([identified, timeout])
    return { peerId: peer, protocols: result.protocols, agent: result.agentVersion ?? null }
  } finally {
    clearTimeout(timer)
    libp2p.removeEventListener('peer:identify', onIdentify)
  }
}

async function stats () {
  let blocks = 0
  let bytes = 0
  for await (const { block } of helia.blockstore.getAll()) {
    blocks += 1
    bytes += block.length
  }
  return { blocks, bytes }
}

const commands = {
  'import-file': async (cmd) => {
    const cid = await fs.addByteStream(createReadStream(cmd.path), importOptions(cmd))
    const stat = await fs.stat(cid)
    return { cid: cid.toString(), size: Number(stat.size) }
  },
  'import-dir': async (cmd) => {
    let root
    for await (const entry of fs.addAll(dirCandidates(cmd.path), { ...importOptions(cmd), wrapWithDirectory: true })) {
      root = entry
    }
    if (root == null || root.path !== '') throw new Error(`${cmd.path}: the import gave no root directory`)
    const stat = await fs.stat(root.cid)
    return { cid: root.cid.toString(), sharded: stat.unixfs?.type === 'hamt-sharded-directory' }
  },
  fetch: fetchContent,
  dial,
  block: async (cmd) => {
    const bytes = await helia.blockstore.get(CID.parse(cmd.cid), { signal: AbortSignal.timeout(cmd.timeoutMs ?? DEFAULT_TIMEOUT_MS) })
    return { base64: Buffer.from(bytes).toString('base64') }
  },
  peers: async () => ({ peers: libp2p.getPeers().map((p) => p.toString()) }),
  stats,
  stop: async () => {
    await helia.stop()
    return {}
  }
}

// a stray rejection inside a library is logged (stderr is the test's log file), not fatal to the peer
process.on('unhandledRejection', (err) => { process.stderr.write(`unhandled rejection: ${err?.stack ?? err}\n`) })

send({ peerId: libp2p.peerId.toString(), addrs: libp2p.getMultiaddrs().map((ma) => ma.toString()) })

const lines = createInterface({ input: process.stdin })
for await (const line of lines) {
  if (line.trim() === '') continue
  let cmd
  try {
    cmd = JSON.parse(line)
  } catch (err) {
    send({ id: null, ok: false, error: `not a JSON command: ${err.message}` })
    continue
  }
  const handler = commands[cmd.cmd]
  if (handler == null) {
    send({ id: cmd.id ?? null, ok: false, error: `unknown command ${JSON.stringify(cmd.cmd)}` })
    continue
  }
  try {
    send({ id: cmd.id ?? null, ok: true, ...(await handler(cmd)) })
  } catch (err) {
    send({ id: cmd.id ?? null, ok: false, error: `${err.name}: ${err.message}` })
  }
  if (cmd.cmd === 'stop') break
}
await helia.stop()
process.exit(0)

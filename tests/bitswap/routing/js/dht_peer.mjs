// A js-libp2p 2.x peer running @libp2p/kad-dht (/ipfs/kad/1.0.0, server mode, loopback addresses
// allowed) and Helia's bitswap, driven by JSON lines, for Pinion's DHT interop tests.
//
// On start it prints one line: {"peerId": "...", "addrs": ["/ip4/127.0.0.1/tcp/N/p2p/..."]}.
// Then it reads one command per line on stdin and answers one line on stdout, in order:
//   {"cmd": "dial", "addr": "/ip4/.../p2p/..."}          -> {"ok": true}  (after identify)
//   {"cmd": "table"}                                     -> {"ok": true, "size": N}  (routing table peers)
//   {"cmd": "wait-table", "size": N, "timeoutMs"?}       -> {"ok": true, "size": N}
//   {"cmd": "put-block", "base64": "..."}                -> {"ok": true, "cid": "..."}  (raw codec, CIDv1)
//   {"cmd": "provide", "cid": "..."}                     -> {"ok": true}  (ADD_PROVIDER to the closest peers)
//   {"cmd": "find-providers", "cid": "...", "timeoutMs"?} -> {"ok": true, "providers": [{"id", "addrs"}]}
//   {"cmd": "fetch", "cid": "...", "timeoutMs"?}         -> {"ok": true, "provider": "...", "base64": "..."}
//        finds a provider through the DHT, dials it, fetches the block over bitswap (verified by hash)
//   {"cmd": "stop"}                                      -> {"ok": true}, then the process exits
// A failed command answers {"ok": false, "error": "..."}.
import '../../../interop/node20.mjs'
import { createInterface } from 'node:readline'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { bitswap } from '@helia/block-brokers'
import { Helia } from '@helia/utils'
import { identify } from '@libp2p/identify'
import { kadDHT, passthroughMapper } from '@libp2p/kad-dht'
import { ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import { multiaddr } from '@multiformats/multiaddr'
import { MemoryBlockstore } from 'blockstore-core'
import { MemoryDatastore } from 'datastore-core'
import { createLibp2p } from 'libp2p'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { sha256 } from 'multiformats/hashes/sha2'

const libp2p = await createLibp2p({
  addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
  transports: [tcp()],
  connectionEncrypters: [noise()],
  streamMuxers: [yamux()],
  services: {
    identify: identify(),
    ping: ping(),
    // the Amino protocol ID, in server mode, keeping 127.0.0.1 addresses (the default mapper drops them)
    dht: kadDHT({ protocol: '/ipfs/kad/1.0.0', clientMode: false, peerInfoMapper: passthroughMapper })
  }
})
const helia = new Helia({
  libp2p,
  blockstore: new MemoryBlockstore(),
  datastore: new MemoryDatastore(),
  blockBrokers: [bitswap()],
  routers: []
})
await helia.start()

function send (obj) {
  process.stdout.write(JSON.stringify(obj) + '\n')
}

async function dial (cmd) {
  const ma = multiaddr(cmd.addr)
  const peer = ma.getPeerId()
  const identified = new Promise((resolve) => {
    const on = (evt) => {
      if (evt.detail.peerId.toString() === peer) {
        libp2p.removeEventListener('peer:identify', on)
        resolve()
      }
    }
    libp2p.addEventListener('peer:identify', on)
  })
  await libp2p.dial(ma, { signal: AbortSignal.timeout(cmd.timeoutMs ?? 10000) })
  await Promise.race([identified, new Promise((resolve) => setTimeout(resolve, cmd.timeoutMs ?? 10000))])
  return {}
}

function tableSize () {
  return libp2p.services.dht.routingTable.size
}

async function waitTable (cmd) {
  const deadline = Date.now() + (cmd.timeoutMs ?? 30000)
  while (tableSize() < cmd.size) {
    if (Date.now() > deadline) throw new Error(`routing table has ${tableSize()} peers, wanted ${cmd.size}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  return { size: tableSize() }
}

async function findProviders (cid, timeoutMs) {
  const out = []
  const seen = new Set()
  for await (const p of libp2p.contentRouting.findProviders(cid, { signal: AbortSignal.timeout(timeoutMs) })) {
    const id = p.id.toString()
    if (seen.has(id)) continue
    seen.add(id)
    out.push({ id, addrs: p.multiaddrs.map((ma) => ma.toString()) })
    break // the first provider is enough for the tests
  }
  return out
}

async function fetchBlock (cmd) {
  const cid = CID.parse(cmd.cid)
  const timeoutMs = cmd.timeoutMs ?? 30000
  const providers = await findProviders(cid, timeoutMs)
  if (providers.length === 0) throw new Error('no provider found through the DHT')
  const prov = providers[0]
  await libp2p.dial(multiaddr(`${prov.addrs[0]}/p2p/${prov.id}`), { signal: AbortSignal.timeout(10000) })
  const bytes = await helia.blockstore.get(cid, { signal: AbortSignal.timeout(timeoutMs) })
  const digest = await sha256.digest(bytes)
  if (!digest.bytes.every((b, i) => b === cid.multihash.bytes[i])) throw new Error('block does not match its CID')
  return { provider: prov.id, base64: Buffer.from(bytes).toString('base64') }
}

async function handle (cmd) {
  switch (cmd.cmd) {
    case 'dial': return await dial(cmd)
    case 'table': return { size: tableSize() }
    case 'wait-table': return await waitTable(cmd)
    case 'put-block': {
      const bytes = Buffer.from(cmd.base64, 'base64')
      const cid = CID.createV1(raw.code, await sha256.digest(bytes))
      await helia.blockstore.put(cid, bytes)
      return { cid: cid.toString() }
    }
    case 'provide':
      await libp2p.contentRouting.provide(CID.parse(cmd.cid), { signal: AbortSignal.timeout(cmd.timeoutMs ?? 30000) })
      return {}
    case 'find-providers':
      return { providers: await findProviders(CID.parse(cmd.cid), cmd.timeoutMs ?? 30000) }
    case 'fetch': return await fetchBlock(cmd)
    case 'stop':
      send({ ok: true })
      await helia.stop()
      process.exit(0)
      break
    default: throw new Error(`unknown command ${cmd.cmd}`)
  }
}

send({ peerId: libp2p.peerId.toString(), addrs: libp2p.getMultiaddrs().map((ma) => ma.toString()) })
const lines = createInterface({ input: process.stdin })
for await (const line of lines) {
  if (line.trim() === '') continue
  let cmd
  try {
    cmd = JSON.parse(line)
    send({ ok: true, ...(await handle(cmd)) })
  } catch (err) {
    send({ ok: false, error: String(err?.stack ?? err) })
  }
}
await helia.stop()
process.exit(0)

// Drives a kubo RPC API (/api/v0) with kubo's own JavaScript client, kubo-rpc-client,
// the way an application uses it, and prints what it saw as one JSON object on stdout.
//
//   node driver.mjs <api url> <scenario> [args...]
//
// Scenarios (each prints {"ok": true, ...} or {"ok": false, "error": message, "name": class}):
//   tree <dir>   add the directory <dir> from disk (globSource, the client's path names begin
//                with '/'), cat a file of it, pin add/ls/rm (names, indirect), block put/rm,
//                dag export/import, refs -r / --unique / local, dag put/get/resolve, get (tar size)
//   error <cid>  cat a CID that is not there: the error message the client shows
//
// Binary results (the CAR, the tar) are summarised by length and sha256 so Python can compare.
import '../node20.mjs'
import { createHash } from 'node:crypto'
import path from 'node:path'
import { create, globSource } from 'kubo-rpc-client'

const [,, url, scenario, ...args] = process.argv
const client = create({ url })

async function collect (source) {
  const out = []
  for await (const item of source) out.push(item)
  return out
}

async function bytes (source) {
  const chunks = await collect(source)
  return Buffer.concat(chunks.map((c) => Buffer.from(c)))
}

const sha256 = (buf) => createHash('sha256').update(buf).digest('hex')

async function tree (dir) {
  const parent = path.dirname(dir)
  const name = path.basename(dir)
  const out = {}
  // add a directory from disk as the client's docs show: names like "/site/a.txt"
  const added = await collect(client.addAll(globSource(parent, `${name}/**/*`)))
  out.added = added.map((e) => ({ path: e.path, cid: e.cid.toString(), size: e.size }))
  const root = added.find((e) => e.path === `/${name}` || e.path === name).cid
  out.root = root.toString()
  out.cat = Buffer.from(await bytes(client.cat(`/ipfs/${root}/a.txt`))).toString('utf8')
  out.ls = (await collect(client.ls(root))).map((e) => ({ name: e.name, type: e.type, size: e.size }))

  // blocks: put, then rm (success has no error), rm again (an error)
  const blockCid = await client.block.put(new TextEncoder().encode('a lone block'))
  out.blockCid = blockCid.toString()
  out.blockRm = (await collect(client.block.rm(blockCid))).map((r) => ({ cid: r.cid.toString(), error: r.error?.message ?? null }))
  out.blockRmAgain = (await collect(client.block.rm(blockCid))).map((r) => ({ cid: r.cid.toString(), error: r.error?.message ?? null }))
  out.blockRmPinned = (await collect(client.block.rm(root))).map((r) => ({ cid: r.cid.toString(), error: r.error?.message ?? null }))

  // pins: named direct pin of a raw block, indirect pins of the tree, rm
  const other = await client.block.put(new TextEncoder().encode('pin me directly'))
  await client.pin.add(other, { recursive: false, name: 'lonely' })
  out.pinLsNamed = (await collect(client.pin.ls({ name: 'lone' }))).map((p) => ({ cid: p.cid.toString(), type: p.type, name: p.name ?? null }))
  const fileCid = added.find((e) => e.path.endsWith('/a.txt')).cid
  out.pinLsIndirect = (await collect(client.pin.ls({ paths: [fileCid] }))).map((p) => ({ cid: p.cid.toString(), type: p.type }))
  out.pinLsTypeIndirect = (await collect(client.pin.ls({ type: 'indirect' }))).map((p) => p.cid.toString())
  try {
    await client.pin.add(root, { recursive: false })
    out.directOverRecursive = null
  } catch (err) {
    out.directOverRecursive = err.message
  }
  out.pinRm = (await client.pin.rm(other)).toString()
  try {
    await client.pin.rm(other)
    out.pinRmAgain = null
  } catch (err) {
    out.pinRmAgain = err.message
  }

  // refs, as IPFS Cluster follows a pin with refs -r
  out.refs = (await collect(client.refs(root, { recursive: true }))).map((r) => ({ ref: r.ref, err: r.err }))
  out.refsUnique = (await collect(client.refs(root, { recursive: true, unique: true, edges: true }))).map((r) => r.ref)
  out.refsLocal = (await collect(client.refs.local())).length

  // CAR round trip
  const car = await bytes(client.dag.export(root))
  out.car = { length: car.length, sha256: sha256(car) }
  const imported = await collect(client.dag.import([car], { pinRoots: true }))
  out.imported = imported.map((r) => ({ cid: r.root.cid.toString(), pinErrorMsg: r.root.pinErrorMsg }))

  // dag put / get / resolve
  const node = { hello: 'world', tree: root, n: [1, 2, 3] }
  const nodeCid = await client.dag.put(node)
  out.dagPut = nodeCid.toString()
  const got = await client.dag.get(nodeCid)
  out.dagGet = { hello: got.value.hello, tree: got.value.tree.toString(), n: got.value.n }
  const resolved = await client.dag.resolve(nodeCid, { path: 'n/1' })
  out.dagResolve = { cid: resolved.cid.toString(), remainderPath: resolved.remainderPath }
  const viaLink = await client.dag.resolve(`/ipfs/${nodeCid}/tree/a.txt`)
  out.dagResolveLink = { cid: viaLink.cid.toString(), remainderPath: viaLink.remainderPath }

  // get: a tar of the directory
  const tar = await bytes(client.get(root))
  out.tar = { length: tar.length, firstName: tar.subarray(0, 100).toString('utf8').replace(/\0.*$/s, '') }
  return out
}

async function error (cid) {
  try {
    await bytes(client.cat(`/ipfs/${cid}`))
    return { caught: null }
  } catch (err) {
    return { caught: err.message, name: err.name, status: err.response?.status ?? null }
  }
}

try {
  let result
  if (scenario === 'tree') result = await tree(args[0])
  else if (scenario === 'error') result = await error(args[0])
  else throw new Error(`unknown scenario ${scenario}`)
  process.stdout.write(JSON.stringify({ ok: true, ...result }) + '\n')
} catch (err) {
  process.stdout.write(JSON.stringify({ ok: false, error: err.message, name: err.name, stack: err.stack }) + '\n')
  process.exitCode = 1
}

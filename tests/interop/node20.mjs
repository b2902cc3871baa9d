// Node 20 lacks Promise.withResolvers (Node >= 22), which some libp2p 2.x
// dependencies (it-queue, mortice, abort-error) call. Imported first by helia_peer.mjs.
if (typeof Promise.withResolvers !== 'function') {
  Promise.withResolvers = function withResolvers () {
    let resolve
    let reject
    const promise = new this((res, rej) => { resolve = res; reject = rej })
    return { promise, resolve, reject }
  }
}

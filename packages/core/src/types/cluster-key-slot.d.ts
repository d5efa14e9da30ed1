// cluster-key-slot ships no types: the Redis Cluster slot (CRC16 of the hash tag) of a key.
declare module 'cluster-key-slot' {
  function generate(key: string | Buffer): number;
  export default generate;
}

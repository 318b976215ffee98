import { makeCerts } from './certs.js';
console.log(JSON.stringify(makeCerts('/tmp/tmp.PTDCbEofzm')));

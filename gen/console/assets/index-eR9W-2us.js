var e,t,n,r,i,a,o,s,c,l,u=Symbol.for(`pv`),d={},f=[],p=/^m(i|n|o|s|text|space)$/,m=Array.isArray,h=f.slice,g=Object.assign;function _(e){e&&e.parentNode&&e.remove()}function v(e,t,n){var r,i,a,o={},s=arguments.length;for(a in t)a==`key`?r=t[a]:a==`ref`&&typeof e!=`function`?i=t[a]:o[a]=t[a];return s>2&&(o.children=s>3?h.call(arguments,2):n),y(e,o,r,i,null)}function y(n,r,i,a,o){var s={type:n,props:r,key:i,ref:a,__k:null,__:null,__b:0,__e:null,__c:null,constructor:u,__v:o||++t,__i:-1,__u:0};return!o&&e.vnode&&e.vnode(s),s}function b(e){return e.children}function x(e,t){this.props=e,this.context=t,this.__g=0}function S(e,t){if(t==null)return e.__&&S(e.__,e.__i+1);for(var n;t<e.__k.length;t++)if((n=e.__k[t])&&n.__e)return n.__e;return typeof e.type!=`function`||e.props.__P?null:S(e)}function C(t){var n,r=t.__v,i=r.__e,a=[],o=[],s=t.__P;s&&((n=g({constructor:u},r)).__v=r.__v+1,e.vnode&&e.vnode(n),M(s,n,r,t.__n,s.namespaceURI,32&r.__u?[i]:null,a,i||S(r),32&r.__u,o),n.__v=r.__v,n.__.__k[n.__i]=n,ie(a,n,o),r.__=r.__e=null,n.__e!=i&&w(n))}function w(e){if((e=e.__)&&e.__c&&!e.props.__P)return e.__e=null,e.__k.some(function(t){return t&&(e.__e=t.__e)}),w(e)}function T(t){(8&t.__g||(t.__g|=8,n.push(t),i++))&&r==e.debounceRendering||((r=e.debounceRendering)||queueMicrotask)(E)}function E(){try{for(var e,t=1;n.length;)n.length>t&&n.sort(a),e=n.shift(),t=n.length,8&e.__g&&C(e)}finally{(i=n.length)&&(r||queueMicrotask)(E)}}function ee(e,t,n,r,i,a,o,s,c,l,u){var p,m,h,g,_,v,y=r.__k||f,b=t.length;for(c=D(n,t,y,c,b),p=0;p<b;p++)(h=n.__k[p])!=null&&(m=~h.__i&&y[h.__i]||d,h.__i=p,v=M(e,h,m,i,a,o,s,c,l,u),g=h.__e,(m.ref!=h.ref||8&m.__u)&&(m.ref&&N(m.ref,null,h,m),h.ref&&u.push(h.ref,h.__c||g,h)),_||=g,4&h.__u?(c=O(h,c,e,!m.__v),m.__e&&(m.__e=null)):typeof h.type==`function`&&v!==void 0?c=v:g&&(c=g.nextSibling),h.__u&=-21);return n.__e=_,c}function D(e,t,n,r,i){var a,o,s,c,l,d,f,p,h,g=n.length,_=g,v=0,x=0,C=e.__k=Array(i);for(a=0;a<i;a++)(o=t[a])!=null&&typeof o!=`boolean`&&typeof o!=`function`?(typeof o!=`object`||o.constructor===String?o=C[a]=y(null,o):m(o)?o=C[a]=y(b,{children:o}):o.constructor===u&&o.__b?o=C[a]=y(o.type,o.props,o.key,o.ref,o.__v):C[a]=o,c=a+v,o.__=e,o.__b=e.__b+1,s=null,~(l=o.__i=k(o,n,c,_))&&(_--,(s=n[l])&&(s.__u|=2)),s&&s.__v?(o.__u|=16,l==c-1?v--:l==c+1?v++:l!=c&&(l>c?v--:v++,x=1)):(~l||(i>g?v--:i<g&&v++),typeof o.type!=`function`&&(o.__u|=4))):C[a]=null;if(x){for(d=[],f=[],a=0;a<i;a++)if((o=C[a])&&16&o.__u){for(v=0,p=d.length;v<p;)d[h=v+p>>1]<o.__i?v=h+1:p=h;d[v]=o.__i,f[a]=v+1}for(v=d.length;a--;)f[a]&&(f[a]==v?v--:C[a].__u|=4)}if(_)for(a=0;a<g;a++)!(s=n[a])||2&s.__u||(s.__e==r&&(r=S(s)),oe(s,s));return r}function O(e,t,n,r){var i,a,o,s;if(typeof e.type==`function`){if(e.props.__P)return t;if(i=e.__k)for(a=0;a<i.length;a++)i[a]&&(i[a].__=e,t=O(i[a],t,n,!1));return t}for(t&&!t.parentNode&&(t=S(e))&&!t.parentNode&&(t=null),o=e.__e,s=t;s&&s.nodeType==8;)s=s.nextSibling;for(o!=s&&(!r&&n.moveBefore&&o.parentNode?n.moveBefore(o,t):n.insertBefore(o,t||null)),t=o;(t&&=t.nextSibling)&&t.nodeType==8&&!t.data.startsWith(`$s`););return t}function k(e,t,n,r){var i,a=e.key,o=e.type,s=t[n],c=s&&!(2&s.__u);if(s===null&&a==null||c&&a==s.key&&o==s.type)return n;if(r>+!!c){for(i=n-1;i>=0;i--)if((s=t[i])&&!(2&s.__u)&&a==s.key&&o==s.type)return i;for(i=n+1;i<t.length;i++)if((s=t[i])&&!(2&s.__u)&&a==s.key&&o==s.type)return i}return-1}function te(e,t,n){n??=``,t[0]==`-`?e.setProperty(t,n):e[t]=n}function A(e,t,n,r,i){var a,o;if(t==`style`){if(typeof n==`string`)e.style.cssText=n;else{if(typeof r==`string`&&(e.style.cssText=r=``),r)for(t in r)n&&t in n||te(e.style,t);if(n)for(t in n)r&&n[t]==r[t]||te(e.style,t,n[t])}}else if(t[0]==`o`&&t[1]==`n`)typeof n!=`function`&&(n=null),typeof r!=`function`&&(r=null),(e.__e||={})[t]=n,n&&r||(o=l[t]||(l[t]=j(t)),(e.__a||={})[t]=c,a=t!=(t=t.replace(s,`$1`)),(t=t.slice(2))[0]<`a`&&(t=t.toLowerCase()),n?e.addEventListener(t,o,a):e.removeEventListener(t,o,a));else{if(i==`http://www.w3.org/2000/svg`)t=t.replace(/xlink(H|:h)/,`h`).replace(/sName$/,`s`);else if(t!=`width`&&t!=`height`&&t!=`href`&&t!=`list`&&t!=`form`&&t!=`tabIndex`&&t!=`download`&&t!=`rowSpan`&&t!=`colSpan`&&t!=`role`&&t!=`popover`&&t in e)try{e[t]=n??``;return}catch{}if(typeof n==`function`)return;n==null||!1===n&&t[4]!=`-`?e.removeAttribute(t):e.setAttribute(t,t==`popover`&&n==1?``:n)}}function j(t){return function(n){var r=this.__e;if(r){if(r=r[t],n[o]==null)n[o]=c++;else if(n[o]<this.__a[t])return;return r(e.event?e.event(n):n)}}}function M(t,n,r,i,a,o,s,c,l,d){var p,h,v,y,C,w,T,E,D,O,k,te,A,j,M,ie,N,P,F=n.type;if(n.constructor!==u)return null;128&r.__u&&(l=32&r.__u,p=r.__c.__z)&&(n.__u|=l,h=o=[],p.nodeType==8?c=ne(p,o):o.push(p),c=o[0]||c),(p=e.__b)&&p(n);e:if(typeof F==`function`){v=s.length;try{if(E=n.props,D=(p=F.prototype)&&p.render,O=(p=F.contextType)&&i[p.__c],k=p?O?O.props.value:p.__:i,(y=r.__c)?(n.__c=y,2&y.__g&&(y.__g|=1)):(D?n.__c=y=new F(E,k):(n.__c=y=new x(E,k),y.constructor=F,y.render=se),O&&O.sub(y),y.state||(y.state={}),y.__n=i,y.__g|=8,y.__h=[],y.__k=[]),D&&(y.__s||(y.__s=y.state),F.getDerivedStateFromProps&&(y.__s==y.state&&(y.__s=g({},y.__s)),g(y.__s,F.getDerivedStateFromProps(E,y.__s)))),C=y.props,w=y.state,y.__v=n,r.__c){if(E!==C&&D&&!F.getDerivedStateFromProps&&y.componentWillReceiveProps&&y.componentWillReceiveProps(E,k),n.__v==r.__v&&!(8&y.__g)||!(4&y.__g)&&y.shouldComponentUpdate&&!1===y.shouldComponentUpdate(E,y.__s,k)){n.__v!=r.__v&&(y.props=E,y.state=y.__s,y.__g&=-9),n.__e=r.__e,n.__k=r.__k,n.__k.some(function(e){e&&(e.__=n)}),f.push.apply(y.__h,y.__k),y.__k=[],y.__h.length&&s.push(y),c=S(r);break e}y.componentWillUpdate&&y.componentWillUpdate(E,y.__s,k),D&&y.componentDidUpdate&&y.__h.push(function(){y.componentDidUpdate(C,w,T)})}else D&&!F.getDerivedStateFromProps&&y.componentWillMount&&y.componentWillMount(),D&&y.componentDidMount&&y.__h.push(y.componentDidMount);y.context=k,y.props=E,y.__P=t,y.__g&=-5,te=e.__r,A=D?25:0;do y.__g&=-9,te&&te(n),p=y.render(y.props,y.state=y.__s,y.context);while(8&y.__g&&++A<25);D&&(f.push.apply(y.__h,y.__k),y.__k=[]),y.state=y.__s,y.getChildContext&&(i=g({},i,y.getChildContext())),D&&r.__c&&y.getSnapshotBeforeUpdate&&(T=y.getSnapshotBeforeUpdate(C,w)),j=p&&p.type===b&&p.key==null?p.props.children:p,E.__P&&(p=c,a=(t=E.__P).namespaceURI,l=o=null,r.props&&r.props.__P!=t&&(r.__k.some(function(e){e&&oe(e,e)}),r.__k=null),c=r.__k?S(r,0):null),c=ee(t,m(j)?j:[j],n,r,i,a,o,s,c,l,d),E.__P&&(n.__e=null,c=p),n.__u&=-161,h&&h.some(_),y.__h.length&&s.push(y),1&y.__g&&(y.__g&=-4)}catch(t){if(s.length=v,n.__v=null,l||o){if(t&&t.then){if(n.__u|=128|l,o){for(~(N=o.indexOf(c||void 0))||(N=o.length);(P=o[N-1])&&P.nodeType==8;)N--;for(;N<o.length;N++)if(P=o[N]){if(o[N]=null,M){if(P==ie)break}else{if(P.nodeType!=8)break;P.data.startsWith(`$s`)&&(ie=ne(M=P))}}}if(!M){for(;c&&c.nodeType==8&&c.nextSibling;)c=c.nextSibling;M=c}(p=ne(M=n.__c.__z||(n.__c.__z=M)))?(n.__e=M,c=p):n.__e=c,c&&=c.nextSibling}else o&&o.some(_)}else n.__e=r.__e;n.__k||=r.__k||[],t&&t.then||re(n),e.__e(t,n,r)}}else c=n.__e=ae(r.__e,n,r,i,a,o,s,l,d,t);return(p=e.diffed)&&p(n),c}function ne(e,t){if(e&&e.nodeType==8&&e.data.startsWith(`$s`))for(var n=1;e=e.nextSibling;){if(e.nodeType==8){if(e.data.startsWith(`$s`))n++;else if(e.data.startsWith(`/$s`)&&!--n)return e}t&&t.push(e)}}function re(e){e&&(e.__c&&(e.__c.__g|=4),e.__k&&e.__k.some(re))}function ie(t,n,r){for(var i=0;i<r.length;)N(r[i++],r[i++],r[i++]);e.__c&&e.__c(n,t),t.some(function(n){try{t=n.__h,n.__h=[],t.some(function(e){e.call(n)})}catch(t){e.__e(t,n.__v)}})}function ae(t,n,r,i,a,o,s,c,l,u){var f,g,v,y,b,x,C,w,T=r.props||d,E=n.props,D=n.type;if(D==`svg`?a=`http://www.w3.org/2000/svg`:D==`math`?a=`http://www.w3.org/1998/Math/MathML`:a||=`http://www.w3.org/1999/xhtml`,o){for(f=0;f<o.length;f++)if((b=o[f])&&(D?b.localName==D:b.nodeType==3)){t=b,o[f]=null;break}}if(!t){if(w=u.ownerDocument||document,!D)return w.createTextNode(E);t=w.createElementNS(a,D,E.is?E:u),c&&=(e.__m&&e.__m(n,o),!1),o=null}if(D){if(u=D==`template`&&t.content||t,o=D==`textarea`&&E.defaultValue!=null?null:o&&h.call(u.childNodes),!c&&o)for(T={},f=0;f<t.attributes.length;f++)T[(b=t.attributes[f]).name]=b.value;for(f in T)b=T[f],f==`dangerouslySetInnerHTML`?v=b:f==`children`||f in E||f==`value`&&`defaultValue`in E||f==`checked`&&`defaultChecked`in E||A(t,f,null,b,a);for(f in E)b=E[f],f==`children`?y=b:f==`dangerouslySetInnerHTML`?g=b:f==`value`?x=b:f==`checked`?C=b:c&&typeof b!=`function`||T[f]===b||A(t,f,b,T[f],a);g?(c||v&&(g.__html==v.__html||g.__html==t.innerHTML)||(t.innerHTML=g.__html),n.__k=[]):(v&&(t.textContent=``),(D==`foreignObject`||a==`http://www.w3.org/1998/Math/MathML`&&p.test(D))&&(a=`http://www.w3.org/1999/xhtml`),ee(u,m(y)?y:[y],n,r,i,a,o,s,o?o[0]:r.__k&&S(r,0),c,l),o&&o.some(_)),c&&D!=`textarea`||(f=`value`,D==`progress`&&x==null?t.removeAttribute(f):x==null||x===t[f]&&(D!=`progress`||x)||A(t,f,x,T[f],a),f=`checked`,C!=null&&C!=t[f]&&A(t,f,C,T[f],a))}else T===E||c&&t.data==E||(t.data=E);return t}function N(t,n,r,i){try{typeof t==`function`?n?n.__x=t(n)||1:(i&&=i.__c||i.__e)&&(n=i.__x)&&(i.__x=null,typeof n==`function`?n():t(null)):t.current=n}catch(t){e.__e(t,r)}}function oe(t,n,r){var i,a,o,s;if(e.unmount&&e.unmount(t),!(i=t.ref)||i.current&&i.current!=t.__e||N(i,null,n,t),i=t.__c){if(i.componentWillUnmount)try{i.componentWillUnmount()}catch(t){e.__e(t,n)}i.__P=i.__n=null}if(i=t.__k)for(s=0;s<i.length;s++)i[s]&&oe(i[s],n,typeof t.type!=`function`||r&&!t.props.__P);!r&&(i=t.__c)&&(i=i.__z)&&(a=ne(i,o=[]))&&(i==t.__e&&o.some(_),_(a),_(i)),r||_(t.__e),t.__e=t.__c=t.__=null}function se(e,t,n){return this.constructor(e,n)}function P(t,n){var r,i,a,o;e.__&&e.__(t,n),n.nodeType==9&&(n=n.documentElement),i=(r=t&&32&t.__u)?null:n.__k,n.__k=y(b,{children:[t]}),a=[],o=[],M(n,n.__k,i||d,d,n.namespaceURI,i?null:n.firstChild?h.call(n.childNodes):null,a,i?i.__e:n.firstChild,r,o),ie(a,n.__k,o),n.__k.props.children=null}e={__e:function(e,t,n,r){for(var a,o,s;t=t.__;)if((a=t.__c)&&!(1&a.__g)){a.__g|=4;try{if((s=(o=a.constructor)&&o.getDerivedStateFromError)&&a.setState(o.getDerivedStateFromError(e)),a.componentDidCatch&&(a.componentDidCatch(e,r||{}),s=1),s&&8&a.__g)return void(a.__g|=2)}catch(t){e=t}}throw i=0,e}},t=0,x.prototype.setState=function(e,t){var n=this.__s;n&&n!=this.state||(n=this.__s=g({},this.state)),typeof e==`function`&&(e=e(g({},n),this.props)),e&&(g(n,e),this.__v&&(t&&this.__k.push(t),T(this)))},x.prototype.forceUpdate=function(e){this.__v&&(this.__g|=4,e&&this.__h.push(e),T(this))},x.prototype.render=b,n=[],i=0,a=function(e,t){return e.__v.__b-t.__v.__b},o=Symbol(),s=/(PointerCapture)$|Capture$/i,c=0,l={};var F=function(e,t,n,r){var i;t[0]=0;for(var a=1;a<t.length;a++){var o=t[a++],s=t[a]?(t[0]|=o?1:2,n[t[a++]]):t[++a];o===3?r[0]=s:o===4?r[1]=Object.assign(r[1]||{},s):o===5?(r[1]=r[1]||{})[t[++a]]=s:o===6?r[1][t[++a]]+=s+``:o?(i=e.apply(s,F(e,s,n,[``,null])),r.push(i),s[0]?t[0]|=2:(t[a-2]=0,t[a]=i)):r.push(s)}return r},ce=new Map;function le(e){var t=ce.get(this);return t||(t=new Map,ce.set(this,t)),(t=F(this,t.get(e)||(t.set(e,t=function(e){for(var t,n,r=1,i=``,a=``,o=[0],s=function(e){r===1&&(e||(i=i.replace(/^\s*\n\s*|\s*\n\s*$/g,``)))?o.push(0,e,i):r===3&&(e||i)?(o.push(3,e,i),r=2):r===2&&i===`...`&&e?o.push(4,e,0):r===2&&i&&!e?o.push(5,0,!0,i):r>=5&&((i||!e&&r===5)&&(o.push(r,0,i,n),r=6),e&&(o.push(r,e,0,n),r=6)),i=``},c=0;c<e.length;c++){c&&(r===1&&s(),s(c));for(var l=0;l<e[c].length;l++)t=e[c][l],r===1?t===`<`?(s(),o=[o],r=3):i+=t:r===4?i===`--`&&t===`>`?(r=1,i=``):i=t+i[0]:a?t===a?a=``:i+=t:t===`"`||t===`'`?a=t:t===`>`?(s(),r=1):r&&(t===`=`?(r=5,n=i,i=``):t===`/`&&(r<5||e[c][l+1]===`>`)?(s(),r===3&&(o=o[0]),r=o,(o=o[0]).push(2,0,r),r=0):t===` `||t===`	`||t===`
`||t===`\r`?(s(),r=2):i+=t),r===3&&i===`!--`&&(r=4,o=o[0])}return s(),o}(e)),t),arguments,[])).length>1?t:t[0]}var I=le.bind(v),L,R,ue,de,fe=Object.is,z=0,pe=[],me=[],B=e,he=B.__b,ge=B.__r,_e=B.diffed,ve=B.__c,ye=B.unmount,be=B.__;function xe(e,t){B.__h&&B.__h(R,e,z||t),z=0;var n=R.__H||(R.__H={__:[],__h:[]});return e>=n.__.length&&n.__.push({}),n.__[e]}function V(e){return z=1,Se(Me,e)}function Se(e,t,n){var r=xe(L++,2);if(r.t=e,!r.__c&&(r.__=[n?n(t):Me(void 0,t),function(e){var t=(r.__N||r.__)[0],n=r.t(t,e);fe(t,n)||(r.__N=[n,r.__[1]],r.__c.setState({}))}],r.__c=R,!R.__f)){R.__f=!0;var i=R.shouldComponentUpdate;R.shouldComponentUpdate=function(e,t,n){var r=this.__H;if(!r)return!0;var a=!1,o=this.props!=e;if(r.__.some(function(e){e.__N&&(a=!0,fe(e.__[0],e.__N[0])||(o=!0))}),i){var s=i.call(this,e,t,n);return a?s||o:s}return!a||o}}return r.__}function H(e,t){var n=xe(L++,3);!B.__s&&je(n.__H,t)&&(n.__P=!0,n.__=e,n.u=t,R.__H.__h.push(n))}function Ce(e){return z=5,we(function(){return{current:e}},[])}function we(e,t){var n=xe(L++,7);return je(n.__H,t)&&(n.__=e(),n.__H=t),n.__}function Te(e,t){return z=8,we(function(){return e},t)}function Ee(){var e;do{for(;e=me.shift();)try{U(e)}catch(t){B.__e(t,{__:(e=e.__P)&&e.__v})}for(;e=pe.shift();){var t=e.__H;if(e.__P&&t)try{t.__h.some(U),t.__h.some(Ae),t.__h=[]}catch(n){t.__h=[],B.__e(n,e.__v)}}}while(me.length)}B.__b=function(e){R=null,he&&he(e)},B.__=function(e,t){e&&t.__k&&t.__k.__m&&(e.__m=t.__k.__m),be&&be(e,t)},B.__r=function(e){ge&&ge(e),L=0;var t=(R=e.__c).__H;t&&(ue==R?R.__h=[]:(t.__h.some(U),t.__h.some(Ae),L=0),t.__h=[],t.__.some(function(e){e.__N&&(e.__=e.__N),e.u=e.__N=void 0})),ue=R},B.diffed=function(e){_e&&_e(e);var t=e.__c;t&&t.__H&&(t.__H.__h.length&&ke(pe.push(t)),t.__H.__.some(function(e){e.u&&(e.__H=e.u)})),ue=R=null},B.__c=function(e,t){t.some(function(e){try{e.__h.some(U),e.__h=e.__h.filter(function(e){return!e.__||Ae(e)})}catch(t){e.__h=[function(){throw t}]}}),ve&&ve(e,t)},B.unmount=function(e){ye&&ye(e);var t,n,r=e.__c;r&&r.__H&&(r.__H.__.some(function(r){try{if(r.__P&&r.__c){if(n===void 0){for(n=e.__;n&&(!n.__c||!n.__c.__P);)n=n.__;n&&=n.__c}r.__P=n,ke(me.push(r))}else U(r)}catch(e){t=e}}),r.__H=void 0,t&&B.__e(t,r.__v))};var De=typeof requestAnimationFrame==`function`;function Oe(e){var t,n=function(){clearTimeout(r),De&&cancelAnimationFrame(t),setTimeout(e)},r=setTimeout(n,35);De&&(t=requestAnimationFrame(n))}function ke(e){e!=1&&de==B.requestAnimationFrame||((de=B.requestAnimationFrame)||Oe)(Ee)}function U(e){var t=R,n=e.__c;typeof n==`function`&&(e.__c=void 0,n()),R=t}function Ae(e){var t=R;e.__c=e.__(),R=t}function je(e,t){return!e||e.length!=t.length||t.some(function(t,n){return!fe(t,e[n])})}function Me(e,t){return typeof t==`function`?t(e):t}var Ne=`cornjacket.token`;function Pe(){return sessionStorage.getItem(Ne)??``}function Fe(e){e?sessionStorage.setItem(Ne,e):sessionStorage.removeItem(Ne)}function Ie(e){return e?{Authorization:`Bearer ${e}`}:{}}async function Le(){return await(await fetch(`/health`)).json()}var W=class extends Error{status;constructor(e,t){super(t),this.status=e}};async function Re(e){let t=e.statusText;try{t=(await e.json()).message??t}catch{}throw new W(e.status,t)}function ze(e){try{let t=e.split(`.`)[1]??``,n=atob(t.replace(/-/g,`+`).replace(/_/g,`/`)),r=JSON.parse(n).scope;return new Set(typeof r==`string`?r.split(` `).filter(Boolean):[])}catch{return new Set}}function Be(e={}){let t=new URLSearchParams;for(let[n,r]of Object.entries(e))r!==void 0&&r!==``&&t.set(n,String(r));let n=t.toString();return n?`?${n}`:``}async function Ve(e,t,n,r,i){let a={method:t,headers:Ie(e)};i!==void 0&&(a.body=JSON.stringify(i),a.headers={...Ie(e),"content-type":`application/json`});let o=await fetch(`${n}${Be(r)}`,a);return o.ok||await Re(o),await o.json()}var G=(e,t,n)=>Ve(e,`GET`,t,n),K=(e,t,n={})=>Ve(e,`POST`,t,void 0,n);async function He(e){let t=await fetch(`/api/v1/projections/sensor_state?limit=1`,{headers:Ie(e)});t.ok||await Re(t)}async function Ue(e,t,n,r,i){let a=new URLSearchParams;t.event_type_prefix&&a.set(`event_type_prefix`,t.event_type_prefix),t.aggregate_id&&a.set(`aggregate_id`,t.aggregate_id),n&&a.set(`position`,n);let o=await fetch(`/api/v1/watch/events?${a}`,{headers:Ie(e),signal:i});o.ok&&o.body||await Re(o);let s=o.body.pipeThrough(new TextDecoderStream).getReader(),c=``;for(;;){let{value:e,done:t}=await s.read();if(t)return;c+=e;let n;for(;(n=c.indexOf(`
`))>=0;){let e=c.slice(0,n).trimEnd();c=c.slice(n+1),e.startsWith(`data:`)&&r(JSON.parse(e.slice(5)))}}}function q(e){let t=e instanceof W?` (${e.status})`:``;return`${e.message}${t}`}function J(e,t,n=0){let[r,i]=V(null),[a,o]=V(``),[s,c]=V(0);H(()=>{let t=!0;return e().then(e=>t&&(i(e),o(``)),e=>t&&o(q(e))),()=>{t=!1}},[...t,s]);let l=Te(()=>c(e=>e+1),[]);return H(()=>{if(!n)return;let e=setInterval(l,n);return()=>clearInterval(e)},[n]),{value:r,error:a,reload:l}}function Y(e){return e.error?I`<p class="error" role="alert">${e.error}</p>`:null}function X(e){if(!e)return``;let t=new Date(e);return Number.isNaN(t.getTime())?e:t.toISOString().replace(`T`,` `).replace(/\.\d+Z$/,`Z`)}function Z(e){let[t,n]=V(!1);return t?I`<span class="confirm" role="group" aria-label=${e.question}
    onKeyDown=${e=>e.key===`Escape`&&n(!1)}>
    <span>${e.question}</span>
    <button type="button" class="danger" autofocus
      onClick=${async()=>(n(!1),await e.onConfirm())}>Confirm</button>
    <button type="button" onClick=${()=>n(!1)}>Cancel</button>
  </span>`:I`<button type="button" onClick=${()=>n(!0)}>${e.label}</button>`}function We(e){let{offset:t,limit:n,total:r}=e,i=Math.min(t+n,r);return I`<nav class="pager" aria-label="pages">
    <button type="button" disabled=${t<=0}
      onClick=${()=>e.onOffset(Math.max(0,t-n))}>Previous</button>
    <span data-testid="page-range">${r?`${t+1}–${i} of ${r}`:`none`}</span>
    <button type="button" disabled=${i>=r}
      onClick=${()=>e.onOffset(t+n)}>Next</button>
  </nav>`}function Ge(e){return I`<pre class="json">${JSON.stringify(e.value,null,2)}</pre>`}function Ke(e){return new Date(Date.now()-e*36e5).toISOString().slice(0,16)}function qe(e){let[t,n]=V({from:Ke(24),to:``}),[r,i]=V(t),[a,o]=V([``]),s=a[a.length-1],c=J(()=>G(e.session.token,`/api/v1/audit`,{from:t.from?new Date(t.from).toISOString():void 0,to:t.to?new Date(t.to).toISOString():void 0,page_size:50,page_token:s}),[t,s]),l=c.value?.records??[],u=c.value?.next_page_token;return I`<main>
    <h1>Audit log</h1>
    <form class="filters" onSubmit=${e=>(e.preventDefault(),o([``]),n({...r}))}>
      <label>From<input type="datetime-local" name="from" value=${r.from}
        onInput=${e=>i({...r,from:e.target.value})} /></label>
      <label>To<input type="datetime-local" name="to" value=${r.to}
        onInput=${e=>i({...r,to:e.target.value})} /></label>
      <button type="submit">Show</button>
    </form>
    <p class="status">Times are your browser's local time.</p>
    <${Y} error=${c.error} />
    <table>
      <thead><tr><th>At</th><th>Who</th><th>Action</th><th>Target</th><th>Outcome</th><th>Change</th></tr></thead>
      <tbody data-testid="audit">${l.map(e=>I`<tr data-audit-id=${e.audit_id}>
          <td>${X(e.at)}</td><td>${e.subject}</td><td>${e.owner}: ${e.action}</td><td>${e.target}</td>
          <td class=${e.outcome===`OK`?`ok`:`error`}>${e.outcome}${e.error?`: ${e.error}`:``}</td>
          <td>${e.change&&Object.keys(e.change).length>0&&I`<details><summary>change</summary><${Ge} value=${e.change} /></details>`}</td></tr>`)}</tbody>
    </table>
    <nav class="pager" aria-label="pages">
      <button type="button" disabled=${a.length<=1} onClick=${()=>o(a.slice(0,-1))}>Previous</button>
      <button type="button" disabled=${!u} onClick=${()=>u&&o([...a,u])}>Next</button>
    </nav>
  </main>`}function Je(e){let t=J(()=>G(e.session.token,`/api/v1/breakers`),[]),n=t.value?.breakers??[];return I`<main>
    <h1>Breakers</h1>
    <p><button type="button" onClick=${()=>t.reload()}>Refresh</button></p>
    <${Y} error=${t.error} />
    <table>
      <thead><tr><th>Endpoint</th><th>State</th><th>Failures in a row</th><th>Retry at</th><th>Updated</th></tr></thead>
      <tbody data-testid="breakers">${n.map(e=>I`<tr data-endpoint=${e.endpoint}>
          <td>${e.endpoint}</td><td class=${e.state===`closed`?`ok`:`error`}>${e.state}</td>
          <td>${e.consecutive_failures??0}</td><td>${X(e.retry_at)}</td><td>${X(e.updated_at)}</td></tr>`)}</tbody>
    </table>
    ${t.value&&!n.length&&I`<p class="status">No endpoint has a breaker yet.</p>`}
  </main>`}var Ye=20;function Xe(e){return e.attempts.length?I`<table class="attempts">
    <thead><tr><th>#</th><th>Started</th><th>Outcome</th><th>HTTP</th><th>ms</th><th>Error</th></tr></thead>
    <tbody data-testid="attempts">${e.attempts.map(e=>I`<tr><td>${e.attempt}</td><td>${X(e.started_at)}</td><td>${e.outcome}</td>
        <td>${e.status_code||``}</td><td>${e.duration_ms}</td><td>${e.error}</td></tr>`)}</tbody>
  </table>`:I`<p class="status">no attempts yet</p>`}function Ze(e){let{token:t}=e.session,[n,r]=V({rule_id:e.ruleId,status:``}),[i,a]=V(n),[o,s]=V(0),[c,l]=V(``),u=J(()=>G(t,`/api/v1/deliveries`,{...n,limit:Ye,offset:o}),[n,o]),d=u.value?.deliveries??[];return I`<main>
    <h1>Deliveries</h1>
    <form class="filters" onSubmit=${e=>(e.preventDefault(),s(0),r({...i}))}>
      <label>Rule id<input name="rule_id" value=${i.rule_id}
        onInput=${e=>a({...i,rule_id:e.target.value})} /></label>
      <label>Status<select name="status" value=${i.status}
        onChange=${e=>a({...i,status:e.target.value})}>
        ${[``,`pending`,`delivered`,`failed`,`discarded`,`suppressed`].map(e=>I`<option value=${e}>${e||`any`}</option>`)}
      </select></label>
      <button type="submit">Filter</button>
      <button type="button" onClick=${()=>u.reload()}>Refresh</button>
    </form>
    <${Y} error=${u.error} />
    <table>
      <thead><tr><th>Created</th><th>Status</th><th>Target</th><th>Event</th><th>Attempts</th><th></th></tr></thead>
      <tbody data-testid="deliveries">${d.map(e=>I`<tr data-delivery-id=${e.delivery_id} data-event-id=${e.event_id} data-status=${e.status}>
          <td>${X(e.created_at)}</td><td>${e.status}</td><td>${e.target_url}</td>
          <td><a href=${`#/lineage/${e.event_id}`}>${e.event_type}</a></td><td>${e.attempt_count}</td>
          <td><button type="button" onClick=${()=>l(c===e.delivery_id?``:e.delivery_id)}
            >Attempts</button></td></tr>
          ${c===e.delivery_id&&I`<tr><td colspan="6"><${Xe} attempts=${e.attempts??[]} /></td></tr>`}`)}</tbody>
    </table>
    ${u.value&&I`<${We} offset=${o} limit=${Ye} total=${u.value.total??0} onOffset=${s} />`}
  </main>`}var Qe=(function(){let e=typeof document<`u`&&document.createElement(`link`).relList;return e&&e.supports&&e.supports(`modulepreload`)?`modulepreload`:`preload`})(),$e=function(e){return`/console/`+e},et={},tt={},nt=function(e){return e.pathname.endsWith(`.css`)},rt=function(e,t,n){if(t in e)return e[t];let r=n();if(!r){e[t]=void 0;return}let i=r.then(()=>{e[t]=void 0},n=>{throw delete e[t],n});return e[t]=i,i},it=function(e,t,n){let r=Promise.resolve();if(t&&t.length>0){let e,i=document.querySelector(`meta[property=csp-nonce]`),a=i?.nonce||i?.getAttribute(`nonce`);function o(e){return Promise.all(e.map(e=>Promise.resolve(e).then(e=>({status:`fulfilled`,value:e}),e=>({status:`rejected`,reason:e}))))}function s(e){return import.meta.resolve?new URL(import.meta.resolve(e)):new URL(e,import.meta.url)}r=o(t.map(t=>{t=$e(t,n);let r=s(t),i=nt(r);return rt(et,r.href,()=>{if(e===void 0){e={all:new Set,styles:new Set};let t=document.getElementsByTagName(`link`);for(let n=t.length-1;n>=0;n--){let r=t[n];e.all.add(r.href),r.rel===`stylesheet`&&e.styles.add(r.href)}}let t=i?e.styles:e.all,n=i?tt[r.href]:void 0;if(!n&&t.has(r.href))return;let o=document.createElement(`link`);if(o.rel=i?`stylesheet`:Qe,i||(o.as=`script`),o.crossOrigin=``,o.href=r.href,a&&o.setAttribute(`nonce`,a),n&&delete tt[r.href],n?.isConnected?n.replaceWith(o):document.head.appendChild(o),i)return new Promise((e,t)=>{let n=i=>{o.removeEventListener(`load`,n),o.removeEventListener(`error`,n),i.type===`error`?(tt[r.href]=o,t(Error(`Unable to preload CSS for ${r}`))):e(i)};o.addEventListener(`load`,n),o.addEventListener(`error`,n)})})}).filter(e=>e!==void 0))}function i(e){let t=new Event(`vite:preloadError`,{cancelable:!0});if(t.payload=e,window.dispatchEvent(t),!t.defaultPrevented)throw e}return r.then(t=>{for(let e of t||[])e.status===`rejected`&&i(e.reason);return e().catch(i)})},Q={"1h":{seconds:3600,buckets:[`10s`,`1m`,`5m`]},"24h":{seconds:86400,buckets:[`1m`,`15m`,`1h`]},"7d":{seconds:604800,buckets:[`1h`,`6h`,`1d`]}},at={s:1e3,m:6e4,h:36e5,d:864e5};function ot(e){return Number(e.slice(0,-1))*at[e.slice(-1)]}async function st(e){try{return await e}catch(e){if(e instanceof W&&e.status===404)return null;throw e}}function ct(e,t,n,r){let i=Date.parse(e.origin??``)/1e3,a=Number(e.bucket_seconds??0),o=new Map;(e.index??[]).forEach((t,n)=>{o.set(i+Number(t)*a,[e.avg?.[n]??null,null])});for(let e of t){let t=Date.parse(e.event_time)/1e3,n=o.get(t);o.set(t,[n?.[0]??null,e.value])}let s=[...o.keys()].sort((e,t)=>e-t);return{times:s,values:s.map(e=>o.get(e)[0]),anomalies:s.map(e=>o.get(e)[1]),start:n.getTime()/1e3,end:r.getTime()/1e3}}function lt(e){let[t,n]=V(`1h`),[r,i]=V(`1m`),a=Ce(null),{token:o,device:s,metric:c}=e,{value:l,error:u}=J(async()=>{let e=ot(r),n=new Date(Math.ceil(Date.now()/e)*e),i=new Date(n.getTime()-Q[t].seconds*1e3),a=encodeURIComponent(s),[l,u]=await Promise.all([G(o,`/api/v1/devices/${a}/series/${encodeURIComponent(c)}`,{start:i.toISOString(),end:n.toISOString(),bucket:r}),G(o,`/api/v1/inference/anomalies`,{device:s,from:i.toISOString(),to:n.toISOString(),page_size:100}).then(e=>(e.anomalies??[]).filter(e=>e.metric===c))]);return{series:l,anomalies:u,start:i,end:n}},[s,c,t,r],1e4);H(()=>{if(!l||!a.current)return;let e=a.current,t=()=>{},n=!0;return it(()=>import(`./chart-CtHLLhYz.js`).then(r=>{n&&(t=r.drawChart(e,c,ct(l.series,l.anomalies,l.start,l.end)))}),[]),()=>{n=!1,t()}},[l]);let d=e=>{n(e),Q[e].buckets.includes(r)||i(Q[e].buckets[1])};return I`<section>
    <h2>${c}</h2>
    <form class="filters" onSubmit=${e=>e.preventDefault()}>
      <label>Range<select name="range" value=${t}
        onChange=${e=>d(e.target.value)}>
        ${Object.keys(Q).map(e=>I`<option value=${e}>last ${e}</option>`)}
      </select></label>
      <label>Bucket<select name="bucket" value=${r}
        onChange=${e=>i(e.target.value)}>
        ${Q[t].buckets.map(e=>I`<option value=${e}>${e}</option>`)}
      </select></label>
    </form>
    <${Y} error=${u} />
    <div class="chart" ref=${a} data-testid="chart"
      data-points=${l?(l.series.index??[]).length:``}></div>
    ${l&&I`<p class="status">${`${(l.series.index??[]).length} buckets from ${l.series.source||`no data`}; ${l.anomalies.length} anomalies`}</p>
    ${l.anomalies.length>0&&I`<table><thead><tr><th>Anomaly at</th><th>Value</th><th>Score</th><th>Reading</th></tr></thead>
        <tbody data-testid="anomalies">${l.anomalies.map(e=>I`<tr><td>${X(e.event_time)}</td><td>${e.value}</td><td>${e.score.toFixed(2)}</td>
            <td><a href=${`#/lineage/${e.source_event_id}`}>lineage</a></td></tr>`)}</tbody></table>`}`}
  </section>`}function ut(e){let[t,n]=V(e.device),[r,i]=V(``),{token:a}=e.session,o=e.device;H(()=>n(o),[o]);let{value:s,error:c}=J(async()=>{if(!o)return null;let e=encodeURIComponent(o),[t,n,r]=await Promise.all([st(G(a,`/api/v1/devices/${e}/latest`)),(async()=>(await G(a,`/api/v1/inference/anomalies`,{device:o,page_size:1})).anomalies?.length?st(G(a,`/api/v1/projections/device_health/${e}`)):null)(),st(G(a,`/api/v1/projections/sensor_state/${e}`))]);return{latest:t?.values??[],health:n,state:r}},[o,a],5e3),l=s?.latest.map(e=>e.metric)??[],u=l.includes(r)?r:l[0],d=s?.health?String(s.health.state.status??``):`ok`;return I`<main>
    <h1>Device${o?` ${o}`:``}</h1>
    <form class="filters" onSubmit=${e=>{e.preventDefault(),t.trim()&&(location.hash=`#/device/${encodeURIComponent(t.trim())}`)}}>
      <label>Device id<input name="device" value=${t}
        onInput=${e=>n(e.target.value)} /></label>
      <button type="submit">Show</button>
    </form>
    <${Y} error=${c} />
    ${o&&I`<p class="status">Refreshed every 5 s (the chart every 10 s).</p>`}
    ${s&&I`<section class="cards">
        <div class="card"><h2>Health</h2>
          <p data-testid="device-health" class=${d===`ok`?`ok`:`error`}>${d}</p>
          ${s.health&&I`<p class="status">${`last anomaly ${X(String(s.health.state.last_anomaly_at??``))}, ${String(s.health.state.anomalies_24h??0)} in 24 h`}</p>`}
        </div>
        <div class="card"><h2>Latest values</h2>
          ${s.latest.length?I`<dl data-testid="latest">${s.latest.map(e=>I`<dt>${e.metric}</dt><dd>${e.value} <small>${X(e.time)}</small></dd>`)}</dl>`:I`<p class="status">no time series yet</p>`}
        </div>
        <div class="card"><h2>Last event</h2>
          ${s.state?I`<p data-testid="last-event"><a href=${`#/lineage/${s.state.last_event_id}`}
                  >${s.state.last_event_id}</a><br /><small>${X(s.state.last_event_timestamp)}</small></p>
                <${Ge} value=${s.state.state} />`:I`<p class="status">none</p>`}
        </div>
      </section>
      ${l.length>1&&I`<label>Metric<select name="metric" value=${u}
          onChange=${e=>i(e.target.value)}>
          ${l.map(e=>I`<option value=${e}>${e}</option>`)}</select></label>`}
      ${u&&I`<${lt} token=${a} device=${o} metric=${u} />`}`}
  </main>`}var dt=20;function ft(e){let{token:t,admin:n}=e.session,[r,i]=V({consumer:``,status:`pending`}),[a,o]=V(r),[s,c]=V(0),[l,u]=V(``),[d,f]=V(``),p=J(()=>G(t,`/api/v1/dlq`,{"filter.consumer":r.consumer,"filter.status":r.status,limit:dt,offset:s}),[r,s]),m=async(e,n)=>{try{let r=(await K(t,`/api/v1/dlq:${e}`,{dlq_ids:[n]})).outcomes?.[0];f(`${e} ${n}: ${r?.status??`done`}${r?.error?` (${r.error})`:``}`)}catch(t){f(`${e} ${n} failed: ${q(t)}`)}p.reload()},h=p.value?.dead_letters??[];return I`<section>
    <h2>Event handler dead letters</h2>
    <form class="filters" onSubmit=${e=>(e.preventDefault(),c(0),i({...a}))}>
      <label>Consumer<input name="consumer" value=${a.consumer}
        onInput=${e=>o({...a,consumer:e.target.value})} /></label>
      <label>Status<select name="status" value=${a.status}
        onChange=${e=>o({...a,status:e.target.value})}>
        ${[`pending`,`replayed`,`discarded`,``].map(e=>I`<option value=${e}>${e||`any`}</option>`)}
      </select></label>
      <button type="submit">Filter</button>
    </form>
    <${Y} error=${p.error} />
    ${d&&I`<p class="status" role="status">${d}</p>`}
    <table>
      <thead><tr><th>Failed</th><th>Consumer</th><th>Event</th><th>Error</th><th>Status</th><th></th></tr></thead>
      <tbody data-testid="dead-letters">${h.map(e=>I`<tr data-dlq-id=${e.dlq_id}>
          <td>${X(e.failed_at)}</td><td>${e.consumer}</td>
          <td>${e.event_type} ${e.aggregate_id}</td><td>${e.error_message}</td>
          <td>${e.status} (${e.retry_count??0} retries)</td>
          <td class="actions">
            <button type="button" onClick=${()=>u(l===e.dlq_id?``:e.dlq_id)}>Inspect</button>
            ${n&&e.status===`pending`&&I`<${Z} label="Replay" question="Replay this dead letter?"
                onConfirm=${()=>m(`replay`,e.dlq_id)} />
              <${Z} label="Discard" question="Discard this dead letter?"
                onConfirm=${()=>m(`discard`,e.dlq_id)} />`}
          </td></tr>
          ${l===e.dlq_id&&I`<tr><td colspan="6"><${Ge} value=${e} />
            ${e.event_id&&I`<a href=${`#/lineage/${e.event_id}`}>lineage of ${e.event_id}</a>`}</td></tr>`}`)}</tbody>
    </table>
    ${p.value&&I`<${We} offset=${s} limit=${dt} total=${p.value.total??0} onOffset=${c} />`}
  </section>`}function pt(e){let{token:t,admin:n}=e.session,[r,i]=V(``),[a,o]=V(``),[s,c]=V(0),[l,u]=V(``),[d,f]=V(``),p=J(()=>G(t,`/api/v1/deliveries`,{status:`failed`,rule_id:r,limit:dt,offset:s}),[r,s]),m=async e=>{try{let n=await K(t,`/api/v1/deliveries:replay`,{delivery_ids:[e]});f(`replayed ${n.replayed??0} delivery (${e})`)}catch(t){f(`replay ${e} failed: ${q(t)}`)}p.reload()},h=async e=>{try{await K(t,`/api/v1/deliveries/${e}:discard`),f(`discarded ${e}`)}catch(t){f(`discard ${e} failed: ${q(t)}`)}p.reload()},g=p.value?.deliveries??[];return I`<section>
    <h2>Failed webhook deliveries</h2>
    <form class="filters" onSubmit=${e=>(e.preventDefault(),c(0),i(a.trim()))}>
      <label>Rule id<input name="rule_id" value=${a}
        onInput=${e=>o(e.target.value)} /></label>
      <button type="submit">Filter</button>
      <button type="button" onClick=${()=>p.reload()}>Refresh</button>
    </form>
    <${Y} error=${p.error} />
    ${d&&I`<p class="status" role="status">${d}</p>`}
    <table>
      <thead><tr><th>Created</th><th>Target</th><th>Event</th><th>Attempts</th><th>Last error</th><th></th></tr></thead>
      <tbody data-testid="failed-deliveries">${g.map(e=>I`<tr data-delivery-id=${e.delivery_id} data-event-id=${e.event_id}>
          <td>${X(e.created_at)}</td><td>${e.target_url}</td>
          <td><a href=${`#/lineage/${e.event_id}`}>${e.event_type}</a></td>
          <td>${e.attempt_count}</td><td>${e.last_error}</td>
          <td class="actions">
            <button type="button" onClick=${()=>u(l===e.delivery_id?``:e.delivery_id)}>Inspect</button>
            ${n&&I`<${Z} label="Replay" question="Send this delivery again?"
                onConfirm=${()=>m(e.delivery_id)} />
              <${Z} label="Discard" question="Give up on this delivery?"
                onConfirm=${()=>h(e.delivery_id)} />`}
          </td></tr>
          ${l===e.delivery_id&&I`<tr><td colspan="6"><${Xe} attempts=${e.attempts??[]} /></td></tr>`}`)}</tbody>
    </table>
    ${p.value&&I`<${We} offset=${s} limit=${dt} total=${p.value.total??0} onOffset=${c} />`}
  </section>`}function mt(e){return I`<main>
    <h1>Dead letters</h1>
    <${pt} session=${e.session} />
    <${ft} session=${e.session} />
  </main>`}function ht(e){let[t,n]=V(e.eventId),[r,i]=V(null),[a,o]=V(``),s=async t=>{try{i(await G(e.session.token,`/api/v1/events/${encodeURIComponent(t)}/lineage`)),o(``)}catch(e){i(null),o(q(e))}};return H(()=>{n(e.eventId),e.eventId&&s(e.eventId)},[e.eventId]),I`<main>
    <h1>Event lineage</h1>
    <form class="filters" onSubmit=${e=>{e.preventDefault();let n=t.trim();n&&(location.hash=`#/lineage/${encodeURIComponent(n)}`)}}>
      <label>Event id<input name="event_id" value=${t} size="40"
        onInput=${e=>n(e.target.value)} /></label>
      <button type="submit">Trace</button>
    </form>
    <${Y} error=${a} />
    ${r&&I`<section>
      ${r.event&&I`<p><strong>${r.event.event_type}</strong> of${` `}<a href=${`#/device/${encodeURIComponent(r.event.aggregate_id)}`}>${r.event.aggregate_id}</a>,
        at ${X(r.event.event_time)}</p>`}
      <ol class="timeline" data-testid="lineage">
        ${r.hops.map(e=>I`<li class=${`hop ${e.status}`} data-stage=${e.stage}>
            <span class="stage">${e.stage}</span>
            <span class="badge">${e.status}</span>
            <time>${X(e.at)}</time>
            <span class="detail">${e.detail}</span>
          </li>`)}
      </ol>
      ${r.event&&I`<details><summary>Payload</summary><${Ge} value=${r.event.payload} /></details>`}
    </section>`}
  </main>`}var gt=async(e,t)=>{try{return t(await e)}catch(e){return`unavailable: ${q(e)}`}};async function _t(e){let t=new Date(Date.now()-36e5).toISOString(),n=e.admin?await Promise.all([gt(G(e.token,`/api/v1/dlq`,{"filter.status":`pending`,limit:1}),e=>e.total??0),gt(G(e.token,`/api/v1/deliveries`,{status:`failed`,limit:1}),e=>e.total??0),gt(G(e.token,`/api/v1/breakers`),e=>(e.breakers??[]).filter(e=>e.state!==`closed`).length)]):[],[r,i]=await Promise.all([Le().catch(()=>({status:`unreachable`})),gt(G(e.token,`/api/v1/inference/anomalies`,{from:t,page_size:100}),e=>`${(e.anomalies??[]).length}${e.next_page_token?`+`:``}`)]);return{health:r,dlqPending:n[0],failedDeliveries:n[1],openBreakers:n[2],anomaliesHour:i}}function vt(e){if(e.value===void 0)return null;let t=typeof e.value==`number`&&e.value>0;return I`<div class="card figure">
    <h2>${e.href?I`<a href=${e.href}>${e.label}</a>`:e.label}</h2>
    <p data-testid=${e.id} class=${t?`big error`:`big`}>${e.value}</p>
  </div>`}function yt(e){let[t,n]=V(null);H(()=>{let t=!0,r=()=>_t(e.session).then(e=>t&&n(e));r();let i=setInterval(r,5e3);return()=>{t=!1,clearInterval(i)}},[e.session]);let r=t?.health;return I`<main>
    <h1>Overview</h1>
    ${r&&I`<p>Platform: <strong data-testid="health" class=${r.status===`healthy`?`ok`:`error`}
        >${r.status}</strong></p>
      ${r.unhealthy?.length?I`<p class="error">Not serving: ${r.unhealthy.join(`, `)}</p>`:I`<p>Every service is serving.</p>`}`}
    ${t&&I`<section class="cards">
      <${vt} id="dlq-pending" label="Dead letters pending" value=${t.dlqPending} href="#/dlq" />
      <${vt} id="failed-deliveries" label="Failed deliveries" value=${t.failedDeliveries} href="#/dlq" />
      <${vt} id="open-breakers" label="Open breakers" value=${t.openBreakers} href="#/breakers" />
      <${vt} id="anomalies-hour" label="Anomalies, last hour" value=${t.anomaliesHour} />
    </section>`}
    <p class="status">Refreshed every 5 s. Ingest rate, outbox depth and consumer lag are
      Prometheus metrics of each process (see the README's Metrics section); the public API
      does not answer them.</p>
  </main>`}var bt=[`sensor_state`,`user_session`,`device_health`],xt=25;function St(e){let[t,n]=V(bt[0]),[r,i]=V(0),a=J(()=>G(e.session.token,`/api/v1/projections/${t}`,{limit:xt,offset:r}),[t,r]),o=a.value?.projections??[];return I`<main>
    <h1>Projections</h1>
    <form class="filters" onSubmit=${e=>e.preventDefault()}>
      <label>Type<select name="projection_type" value=${t}
        onChange=${e=>(i(0),n(e.target.value))}>
        ${bt.map(e=>I`<option value=${e}>${e}</option>`)}
      </select></label>
      <button type="button" onClick=${()=>a.reload()}>Refresh</button>
    </form>
    <${Y} error=${a.error} />
    <table>
      <thead><tr><th>Aggregate</th><th>State</th><th>Last event</th><th>Updated</th></tr></thead>
      <tbody data-testid="projections">${o.map(e=>I`<tr data-aggregate-id=${e.aggregate_id}>
          <td>${t===`user_session`?e.aggregate_id:I`<a href=${`#/device/${encodeURIComponent(e.aggregate_id)}`}>${e.aggregate_id}</a>`}</td>
          <td><code>${JSON.stringify(e.state)}</code></td>
          <td><a href=${`#/lineage/${e.last_event_id}`}>${X(e.last_event_timestamp)}</a></td>
          <td>${X(e.updated_at)}</td></tr>`)}</tbody>
    </table>
    ${a.value&&I`<${We} offset=${r} limit=${xt} total=${a.value.total??0} onOffset=${i} />`}
  </main>`}var Ct=20,wt={name:``,event_type_pattern:`sensor.reading`,condition:``,url:``};function Tt(e){if(!e.startsWith(`condition:`))return null;let t=/position (\d+)/.exec(e);return t?Number(t[1]):null}function Et(e){let{rule:t}=e,[n,r]=V(t?{name:t.name,event_type_pattern:t.event_type_pattern,condition:t.condition??``,url:t.target.url}:wt),[i,a]=V(``),[o,s]=V(``),c=e=>t=>r({...n,[e]:t.target.value}),l=async r=>{r.preventDefault(),s(n.condition);try{if(t){let r={name:n.name,event_type_pattern:n.event_type_pattern,condition:n.condition};n.url!==t.target.url&&(r.target={url:n.url}),await Ve(e.session.token,`PATCH`,`/api/v1/rules/${t.rule_id}`,void 0,r),e.onDone(`saved ${n.name}`)}else{let t=await K(e.session.token,`/api/v1/rules`,{name:n.name,event_type_pattern:n.event_type_pattern,condition:n.condition,target:{url:n.url},enabled:!0});e.onDone(`created ${t.name}`+(t.generated_secret?`; its signing secret (shown once): ${t.generated_secret}`:``))}}catch(e){a(e instanceof W?e.message:q(e))}},u=Tt(i);return I`<form class="rule-form" onSubmit=${l} aria-label=${t?`edit rule`:`new rule`}>
    <h2>${t?`Edit ${t.name}`:`New rule`}</h2>
    <label>Name<input name="name" value=${n.name} onInput=${c(`name`)} required /></label>
    <label>Event type pattern<input name="event_type_pattern" value=${n.event_type_pattern}
      onInput=${c(`event_type_pattern`)} placeholder="sensor.reading, sensor.* or *" /></label>
    <label>Condition<input name="condition" value=${n.condition} onInput=${c(`condition`)}
      class="mono" placeholder='payload.value > 80 and payload.unit == "C"'
      aria-invalid=${u!==null} aria-describedby=${u===null?void 0:`condition-error`} /></label>
    ${u!==null&&I`<pre class="caret" id="condition-error" data-testid="condition-error">${`${o}\n${` `.repeat(Math.max(0,u-1))}^ ${i.replace(/^condition: /,``)}`}</pre>`}
    <label>Webhook URL<input name="url" value=${n.url} onInput=${c(`url`)} type="url" /></label>
    ${u===null&&I`<${Y} error=${i} />`}
    <p><button type="submit">${t?`Save`:`Create rule`}</button>
      <button type="button" onClick=${()=>e.onDone(``)}>Cancel</button></p>
  </form>`}function Dt(e){let{token:t,admin:n}=e.session,[r,i]=V(0),[a,o]=V(null),[s,c]=V(``),l=J(()=>G(t,`/api/v1/rules`,{limit:Ct,offset:r}),[r]),u=async(e,t)=>{try{await t(),c(e)}catch(t){c(`${e} failed: ${q(t)}`)}l.reload()},d=e=>{o(null),e&&c(e),l.reload()},f=l.value?.rules??[];return I`<main>
    <h1>Rules</h1>
    ${n&&!a&&I`<p><button type="button" onClick=${()=>o(`new`)}>New rule</button></p>`}
    ${a&&I`<${Et} key=${a===`new`?`new`:a.rule_id} session=${e.session}
      rule=${a===`new`?null:a} onDone=${d} />`}
    ${s&&I`<p class="status" role="status" data-testid="rules-note">${s}</p>`}
    <${Y} error=${l.error} />
    <table>
      <thead><tr><th>Name</th><th>Pattern</th><th>Condition</th><th>Target</th><th>State</th><th></th></tr></thead>
      <tbody data-testid="rules">${f.map(e=>I`<tr data-rule-id=${e.rule_id}>
          <td>${e.name}</td><td><code>${e.event_type_pattern}</code></td><td><code>${e.condition}</code></td>
          <td>${e.target.url}</td>
          <td>${e.enabled?`enabled`:`disabled${e.disabled_reason?`: ${e.disabled_reason}`:``}`}</td>
          <td class="actions">
            <a href=${`#/deliveries/${e.rule_id}`}>Deliveries</a>
            ${n&&I`<button type="button" onClick=${()=>o(e)}>Edit</button>
              ${e.enabled?I`<button type="button" onClick=${()=>u(`disabled ${e.name}`,()=>K(t,`/api/v1/rules/${e.rule_id}:disable`,{reason:`disabled in the console`}))}>Disable</button>`:I`<button type="button" onClick=${()=>u(`enabled ${e.name}`,()=>K(t,`/api/v1/rules/${e.rule_id}:enable`))}>Enable</button>`}
              <${Z} label="Delete" question=${`Delete ${e.name} and its deliveries?`}
                onConfirm=${()=>u(`deleted ${e.name}`,()=>Ve(t,`DELETE`,`/api/v1/rules/${e.rule_id}`))} />`}
          </td></tr>`)}</tbody>
    </table>
    ${l.value&&I`<${We} offset=${r} limit=${Ct} total=${l.value.total??0} onOffset=${i} />`}
  </main>`}var $=500;function Ot(e){let[t,n]=V({event_type_prefix:``,aggregate_id:``}),[r,i]=V(t),[a,o]=V([]),[s,c]=V(!1),[l,u]=V(0),[d,f]=V(0),[p,m]=V(`connecting`),h=Ce(!1),g=Ce([]);h.current=s,H(()=>{let n=new AbortController,r=``,i=[],a=0,s=0,c=()=>{s=0;let e=i.reverse();i=[],f(a),h.current?(g.current.push(...e.reverse()),g.current.length>$&&g.current.splice(0,g.current.length-$),u(g.current.length)):o(t=>e.concat(t).slice(0,$))};return o([]),(async()=>{for(;!n.signal.aborted;){try{await Ue(e.session.token,t,r,e=>{r=e.position||r,e.heartbeat&&m(`live`),e.end&&m(`ended: ${e.end.message}`),e.event&&(i.push(e.event),i.length>$&&i.splice(0,i.length-$),a+=1,s||=requestAnimationFrame(c))},n.signal)}catch(e){if(n.signal.aborted||(m(`disconnected: ${e.message}; retrying`),e instanceof W&&e.status<500&&e.status!==429))return}await new Promise(e=>setTimeout(e,1e3))}})(),()=>{n.abort(),s&&cancelAnimationFrame(s)}},[e.session.token,t]);let _=()=>{if(s){let e=g.current.reverse();g.current=[],u(0),o(t=>[...e,...t].slice(0,$))}c(!s)},v=e=>t=>i({...r,[e]:t.target.value});return I`<main>
    <h1>Live tail</h1>
    <form class="filters" onSubmit=${e=>(e.preventDefault(),n({...r}))}>
      <label>Event type prefix<input name="event_type_prefix" value=${r.event_type_prefix}
        onInput=${v(`event_type_prefix`)} placeholder="sensor." /></label>
      <label>Aggregate<input name="aggregate_id" value=${r.aggregate_id}
        onInput=${v(`aggregate_id`)} /></label>
      <button type="submit">Apply</button>
      <button type="button" onClick=${_}>${s?`Resume (${l})`:`Pause`}</button>
    </form>
    <p class="status"><span data-testid="tail-state">${p}</span>${`; `}<span data-testid="tail-seen"
      >${d}</span>${` events seen, the last ${$} kept`}</p>
    <div class="scroll">
    <table class="tail">
      <thead><tr><th>Ingested</th><th>Type</th><th>Event id</th><th>Aggregate</th><th>Payload</th></tr></thead>
      <tbody data-testid="tail">
        ${a.map(e=>I`<tr key=${e.event_id} data-event-id=${e.event_id}>
            <td>${e.ingested_at}</td><td>${e.event_type}</td>
            <td><a href=${`#/lineage/${e.event_id}`}><code>${e.event_id}</code></a></td>
            <td><a href=${`#/device/${encodeURIComponent(e.aggregate_id)}`}>${e.aggregate_id}</a></td>
            <td><code>${JSON.stringify(e.payload)}</code></td>
          </tr>`)}
      </tbody>
    </table>
    </div>
  </main>`}function kt(){let[e,t]=V(location.hash||`#/overview`);H(()=>{let e=()=>t(location.hash||`#/overview`);return addEventListener(`hashchange`,e),()=>removeEventListener(`hashchange`,e)},[]);let[n,...r]=e.replace(/^#\/?/,``).split(`/`);return[n||`overview`,decodeURIComponent(r.join(`/`))]}function At(e){let[t,n]=V(``),[r,i]=V(``);return I`<main>
    <h1>Sign in</h1>
    <p>Paste a token (<code>cornjacket token --scope read</code>). It stays in this tab only.</p>
    <form onSubmit=${async n=>{n.preventDefault();let r=t.trim();try{await He(r),Fe(r),e.onToken(r)}catch(e){let t=e instanceof W?` (${e.status})`:``;i(`${e.message}${t}`)}}}>
      <label>Token<textarea name="token" aria-label="token" value=${t}
        onInput=${e=>n(e.target.value)} /></label>
      <p><button type="submit">Sign in</button></p>
      ${r&&I`<p class="error" role="alert">${r}</p>`}
    </form>
  </main>`}var jt=[[`overview`,`Overview`,!1],[`tail`,`Live tail`,!1],[`device`,`Devices`,!1],[`lineage`,`Lineage`,!1],[`projections`,`Projections`,!1],[`dlq`,`Dead letters`,!0],[`rules`,`Rules`,!0],[`deliveries`,`Deliveries`,!0],[`breakers`,`Breakers`,!0],[`audit`,`Audit`,!0]];function Mt(e){let{page:t,arg:n,session:r}=e;switch(t){case`tail`:return I`<${Ot} session=${r} />`;case`device`:return I`<${ut} session=${r} device=${n} />`;case`lineage`:return I`<${ht} session=${r} eventId=${n} />`;case`projections`:return I`<${St} session=${r} />`;case`dlq`:return I`<${mt} session=${r} />`;case`rules`:return I`<${Dt} session=${r} />`;case`deliveries`:return I`<${Ze} key=${n} session=${r} ruleId=${n} />`;case`breakers`:return I`<${Je} session=${r} />`;case`audit`:return I`<${qe} session=${r} />`;default:return I`<${yt} session=${r} />`}}function Nt(){let[e,t]=kt(),[n,r]=V(Pe()),[i,a]=V(null);H(()=>{Le().then(a,()=>a({status:`unreachable`}))},[]);let o=i?.auth===`disabled`,s=we(()=>o?{token:``,admin:!0}:{token:n,admin:ze(n).has(`admin`)},[o,n]);if(!i)return I`<main><p>Loading…</p></main>`;let c=o||!!n;return I`
    ${o&&I`<div class="warning" role="alert">${i.warning}</div>`}
    <header>
      <strong>Cornjacket</strong>
      ${c&&I`<nav aria-label="pages">${jt.filter(([,,e])=>!e||s.admin).map(([t,n])=>I`<a href=${`#/${t}`} aria-current=${e===t?`page`:void 0}>${n}</a>`)}</nav>`}
      ${!o&&n&&I`<button type="button" onClick=${()=>(Fe(``),r(``))}>Sign out</button>`}
    </header>
    ${c?I`<${Mt} page=${e} arg=${t} session=${s} />`:I`<${At} onToken=${r} />`}
  `}P(I`<${Nt} />`,document.getElementById(`app`));
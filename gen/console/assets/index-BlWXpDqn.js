var e,t,n,r,i,a,o,s,c,l,u=Symbol.for(`pv`),d={},f=[],p=/^m(i|n|o|s|text|space)$/,m=Array.isArray,h=f.slice,g=Object.assign;function _(e){e&&e.parentNode&&e.remove()}function v(e,t,n){var r,i,a,o={},s=arguments.length;for(a in t)a==`key`?r=t[a]:a==`ref`&&typeof e!=`function`?i=t[a]:o[a]=t[a];return s>2&&(o.children=s>3?h.call(arguments,2):n),y(e,o,r,i,null)}function y(n,r,i,a,o){var s={type:n,props:r,key:i,ref:a,__k:null,__:null,__b:0,__e:null,__c:null,constructor:u,__v:o||++t,__i:-1,__u:0};return!o&&e.vnode&&e.vnode(s),s}function b(e){return e.children}function x(e,t){this.props=e,this.context=t,this.__g=0}function S(e,t){if(t==null)return e.__&&S(e.__,e.__i+1);for(var n;t<e.__k.length;t++)if((n=e.__k[t])&&n.__e)return n.__e;return typeof e.type!=`function`||e.props.__P?null:S(e)}function C(t){var n,r=t.__v,i=r.__e,a=[],o=[],s=t.__P;s&&((n=g({constructor:u},r)).__v=r.__v+1,e.vnode&&e.vnode(n),N(s,n,r,t.__n,s.namespaceURI,32&r.__u?[i]:null,a,i||S(r),32&r.__u,o),n.__v=r.__v,n.__.__k[n.__i]=n,re(a,n,o),r.__=r.__e=null,n.__e!=i&&w(n))}function w(e){if((e=e.__)&&e.__c&&!e.props.__P)return e.__e=null,e.__k.some(function(t){return t&&(e.__e=t.__e)}),w(e)}function T(t){(8&t.__g||(t.__g|=8,n.push(t),i++))&&r==e.debounceRendering||((r=e.debounceRendering)||queueMicrotask)(E)}function E(){try{for(var e,t=1;n.length;)n.length>t&&n.sort(a),e=n.shift(),t=n.length,8&e.__g&&C(e)}finally{(i=n.length)&&(r||queueMicrotask)(E)}}function ee(e,t,n,r,i,a,o,s,c,l,u){var p,m,h,g,_,v,y=r.__k||f,b=t.length;for(c=D(n,t,y,c,b),p=0;p<b;p++)(h=n.__k[p])!=null&&(m=~h.__i&&y[h.__i]||d,h.__i=p,v=N(e,h,m,i,a,o,s,c,l,u),g=h.__e,(m.ref!=h.ref||8&m.__u)&&(m.ref&&P(m.ref,null,h,m),h.ref&&u.push(h.ref,h.__c||g,h)),_||=g,4&h.__u?(c=O(h,c,e,!m.__v),m.__e&&(m.__e=null)):typeof h.type==`function`&&v!==void 0?c=v:g&&(c=g.nextSibling),h.__u&=-21);return n.__e=_,c}function D(e,t,n,r,i){var a,o,s,c,l,d,f,p,h,g=n.length,_=g,v=0,x=0,C=e.__k=Array(i);for(a=0;a<i;a++)(o=t[a])!=null&&typeof o!=`boolean`&&typeof o!=`function`?(typeof o!=`object`||o.constructor===String?o=C[a]=y(null,o):m(o)?o=C[a]=y(b,{children:o}):o.constructor===u&&o.__b?o=C[a]=y(o.type,o.props,o.key,o.ref,o.__v):C[a]=o,c=a+v,o.__=e,o.__b=e.__b+1,s=null,~(l=o.__i=k(o,n,c,_))&&(_--,(s=n[l])&&(s.__u|=2)),s&&s.__v?(o.__u|=16,l==c-1?v--:l==c+1?v++:l!=c&&(l>c?v--:v++,x=1)):(~l||(i>g?v--:i<g&&v++),typeof o.type!=`function`&&(o.__u|=4))):C[a]=null;if(x){for(d=[],f=[],a=0;a<i;a++)if((o=C[a])&&16&o.__u){for(v=0,p=d.length;v<p;)d[h=v+p>>1]<o.__i?v=h+1:p=h;d[v]=o.__i,f[a]=v+1}for(v=d.length;a--;)f[a]&&(f[a]==v?v--:C[a].__u|=4)}if(_)for(a=0;a<g;a++)!(s=n[a])||2&s.__u||(s.__e==r&&(r=S(s)),ae(s,s));return r}function O(e,t,n,r){var i,a,o,s;if(typeof e.type==`function`){if(e.props.__P)return t;if(i=e.__k)for(a=0;a<i.length;a++)i[a]&&(i[a].__=e,t=O(i[a],t,n,!1));return t}for(t&&!t.parentNode&&(t=S(e))&&!t.parentNode&&(t=null),o=e.__e,s=t;s&&s.nodeType==8;)s=s.nextSibling;for(o!=s&&(!r&&n.moveBefore&&o.parentNode?n.moveBefore(o,t):n.insertBefore(o,t||null)),t=o;(t&&=t.nextSibling)&&t.nodeType==8&&!t.data.startsWith(`$s`););return t}function k(e,t,n,r){var i,a=e.key,o=e.type,s=t[n],c=s&&!(2&s.__u);if(s===null&&a==null||c&&a==s.key&&o==s.type)return n;if(r>+!!c){for(i=n-1;i>=0;i--)if((s=t[i])&&!(2&s.__u)&&a==s.key&&o==s.type)return i;for(i=n+1;i<t.length;i++)if((s=t[i])&&!(2&s.__u)&&a==s.key&&o==s.type)return i}return-1}function A(e,t,n){n??=``,t[0]==`-`?e.setProperty(t,n):e[t]=n}function j(e,t,n,r,i){var a,o;if(t==`style`){if(typeof n==`string`)e.style.cssText=n;else{if(typeof r==`string`&&(e.style.cssText=r=``),r)for(t in r)n&&t in n||A(e.style,t);if(n)for(t in n)r&&n[t]==r[t]||A(e.style,t,n[t])}}else if(t[0]==`o`&&t[1]==`n`)typeof n!=`function`&&(n=null),typeof r!=`function`&&(r=null),(e.__e||={})[t]=n,n&&r||(o=l[t]||(l[t]=M(t)),(e.__a||={})[t]=c,a=t!=(t=t.replace(s,`$1`)),(t=t.slice(2))[0]<`a`&&(t=t.toLowerCase()),n?e.addEventListener(t,o,a):e.removeEventListener(t,o,a));else{if(i==`http://www.w3.org/2000/svg`)t=t.replace(/xlink(H|:h)/,`h`).replace(/sName$/,`s`);else if(t!=`width`&&t!=`height`&&t!=`href`&&t!=`list`&&t!=`form`&&t!=`tabIndex`&&t!=`download`&&t!=`rowSpan`&&t!=`colSpan`&&t!=`role`&&t!=`popover`&&t in e)try{e[t]=n??``;return}catch{}if(typeof n==`function`)return;n==null||!1===n&&t[4]!=`-`?e.removeAttribute(t):e.setAttribute(t,t==`popover`&&n==1?``:n)}}function M(t){return function(n){var r=this.__e;if(r){if(r=r[t],n[o]==null)n[o]=c++;else if(n[o]<this.__a[t])return;return r(e.event?e.event(n):n)}}}function N(t,n,r,i,a,o,s,c,l,d){var p,h,v,y,C,w,T,E,D,O,k,A,j,M,N,re,P,F,I=n.type;if(n.constructor!==u)return null;128&r.__u&&(l=32&r.__u,p=r.__c.__z)&&(n.__u|=l,h=o=[],p.nodeType==8?c=te(p,o):o.push(p),c=o[0]||c),(p=e.__b)&&p(n);e:if(typeof I==`function`){v=s.length;try{if(E=n.props,D=(p=I.prototype)&&p.render,O=(p=I.contextType)&&i[p.__c],k=p?O?O.props.value:p.__:i,(y=r.__c)?(n.__c=y,2&y.__g&&(y.__g|=1)):(D?n.__c=y=new I(E,k):(n.__c=y=new x(E,k),y.constructor=I,y.render=oe),O&&O.sub(y),y.state||(y.state={}),y.__n=i,y.__g|=8,y.__h=[],y.__k=[]),D&&(y.__s||(y.__s=y.state),I.getDerivedStateFromProps&&(y.__s==y.state&&(y.__s=g({},y.__s)),g(y.__s,I.getDerivedStateFromProps(E,y.__s)))),C=y.props,w=y.state,y.__v=n,r.__c){if(E!==C&&D&&!I.getDerivedStateFromProps&&y.componentWillReceiveProps&&y.componentWillReceiveProps(E,k),n.__v==r.__v&&!(8&y.__g)||!(4&y.__g)&&y.shouldComponentUpdate&&!1===y.shouldComponentUpdate(E,y.__s,k)){n.__v!=r.__v&&(y.props=E,y.state=y.__s,y.__g&=-9),n.__e=r.__e,n.__k=r.__k,n.__k.some(function(e){e&&(e.__=n)}),f.push.apply(y.__h,y.__k),y.__k=[],y.__h.length&&s.push(y),c=S(r);break e}y.componentWillUpdate&&y.componentWillUpdate(E,y.__s,k),D&&y.componentDidUpdate&&y.__h.push(function(){y.componentDidUpdate(C,w,T)})}else D&&!I.getDerivedStateFromProps&&y.componentWillMount&&y.componentWillMount(),D&&y.componentDidMount&&y.__h.push(y.componentDidMount);y.context=k,y.props=E,y.__P=t,y.__g&=-5,A=e.__r,j=D?25:0;do y.__g&=-9,A&&A(n),p=y.render(y.props,y.state=y.__s,y.context);while(8&y.__g&&++j<25);D&&(f.push.apply(y.__h,y.__k),y.__k=[]),y.state=y.__s,y.getChildContext&&(i=g({},i,y.getChildContext())),D&&r.__c&&y.getSnapshotBeforeUpdate&&(T=y.getSnapshotBeforeUpdate(C,w)),M=p&&p.type===b&&p.key==null?p.props.children:p,E.__P&&(p=c,a=(t=E.__P).namespaceURI,l=o=null,r.props&&r.props.__P!=t&&(r.__k.some(function(e){e&&ae(e,e)}),r.__k=null),c=r.__k?S(r,0):null),c=ee(t,m(M)?M:[M],n,r,i,a,o,s,c,l,d),E.__P&&(n.__e=null,c=p),n.__u&=-161,h&&h.some(_),y.__h.length&&s.push(y),1&y.__g&&(y.__g&=-4)}catch(t){if(s.length=v,n.__v=null,l||o){if(t&&t.then){if(n.__u|=128|l,o){for(~(P=o.indexOf(c||void 0))||(P=o.length);(F=o[P-1])&&F.nodeType==8;)P--;for(;P<o.length;P++)if(F=o[P]){if(o[P]=null,N){if(F==re)break}else{if(F.nodeType!=8)break;F.data.startsWith(`$s`)&&(re=te(N=F))}}}if(!N){for(;c&&c.nodeType==8&&c.nextSibling;)c=c.nextSibling;N=c}(p=te(N=n.__c.__z||(n.__c.__z=N)))?(n.__e=N,c=p):n.__e=c,c&&=c.nextSibling}else o&&o.some(_)}else n.__e=r.__e;n.__k||=r.__k||[],t&&t.then||ne(n),e.__e(t,n,r)}}else c=n.__e=ie(r.__e,n,r,i,a,o,s,l,d,t);return(p=e.diffed)&&p(n),c}function te(e,t){if(e&&e.nodeType==8&&e.data.startsWith(`$s`))for(var n=1;e=e.nextSibling;){if(e.nodeType==8){if(e.data.startsWith(`$s`))n++;else if(e.data.startsWith(`/$s`)&&!--n)return e}t&&t.push(e)}}function ne(e){e&&(e.__c&&(e.__c.__g|=4),e.__k&&e.__k.some(ne))}function re(t,n,r){for(var i=0;i<r.length;)P(r[i++],r[i++],r[i++]);e.__c&&e.__c(n,t),t.some(function(n){try{t=n.__h,n.__h=[],t.some(function(e){e.call(n)})}catch(t){e.__e(t,n.__v)}})}function ie(t,n,r,i,a,o,s,c,l,u){var f,g,v,y,b,x,C,w,T=r.props||d,E=n.props,D=n.type;if(D==`svg`?a=`http://www.w3.org/2000/svg`:D==`math`?a=`http://www.w3.org/1998/Math/MathML`:a||=`http://www.w3.org/1999/xhtml`,o){for(f=0;f<o.length;f++)if((b=o[f])&&(D?b.localName==D:b.nodeType==3)){t=b,o[f]=null;break}}if(!t){if(w=u.ownerDocument||document,!D)return w.createTextNode(E);t=w.createElementNS(a,D,E.is?E:u),c&&=(e.__m&&e.__m(n,o),!1),o=null}if(D){if(u=D==`template`&&t.content||t,o=D==`textarea`&&E.defaultValue!=null?null:o&&h.call(u.childNodes),!c&&o)for(T={},f=0;f<t.attributes.length;f++)T[(b=t.attributes[f]).name]=b.value;for(f in T)b=T[f],f==`dangerouslySetInnerHTML`?v=b:f==`children`||f in E||f==`value`&&`defaultValue`in E||f==`checked`&&`defaultChecked`in E||j(t,f,null,b,a);for(f in E)b=E[f],f==`children`?y=b:f==`dangerouslySetInnerHTML`?g=b:f==`value`?x=b:f==`checked`?C=b:c&&typeof b!=`function`||T[f]===b||j(t,f,b,T[f],a);g?(c||v&&(g.__html==v.__html||g.__html==t.innerHTML)||(t.innerHTML=g.__html),n.__k=[]):(v&&(t.textContent=``),(D==`foreignObject`||a==`http://www.w3.org/1998/Math/MathML`&&p.test(D))&&(a=`http://www.w3.org/1999/xhtml`),ee(u,m(y)?y:[y],n,r,i,a,o,s,o?o[0]:r.__k&&S(r,0),c,l),o&&o.some(_)),c&&D!=`textarea`||(f=`value`,D==`progress`&&x==null?t.removeAttribute(f):x==null||x===t[f]&&(D!=`progress`||x)||j(t,f,x,T[f],a),f=`checked`,C!=null&&C!=t[f]&&j(t,f,C,T[f],a))}else T===E||c&&t.data==E||(t.data=E);return t}function P(t,n,r,i){try{typeof t==`function`?n?n.__x=t(n)||1:(i&&=i.__c||i.__e)&&(n=i.__x)&&(i.__x=null,typeof n==`function`?n():t(null)):t.current=n}catch(t){e.__e(t,r)}}function ae(t,n,r){var i,a,o,s;if(e.unmount&&e.unmount(t),!(i=t.ref)||i.current&&i.current!=t.__e||P(i,null,n,t),i=t.__c){if(i.componentWillUnmount)try{i.componentWillUnmount()}catch(t){e.__e(t,n)}i.__P=i.__n=null}if(i=t.__k)for(s=0;s<i.length;s++)i[s]&&ae(i[s],n,typeof t.type!=`function`||r&&!t.props.__P);!r&&(i=t.__c)&&(i=i.__z)&&(a=te(i,o=[]))&&(i==t.__e&&o.some(_),_(a),_(i)),r||_(t.__e),t.__e=t.__c=t.__=null}function oe(e,t,n){return this.constructor(e,n)}function F(t,n){var r,i,a,o;e.__&&e.__(t,n),n.nodeType==9&&(n=n.documentElement),i=(r=t&&32&t.__u)?null:n.__k,n.__k=y(b,{children:[t]}),a=[],o=[],N(n,n.__k,i||d,d,n.namespaceURI,i?null:n.firstChild?h.call(n.childNodes):null,a,i?i.__e:n.firstChild,r,o),re(a,n.__k,o),n.__k.props.children=null}e={__e:function(e,t,n,r){for(var a,o,s;t=t.__;)if((a=t.__c)&&!(1&a.__g)){a.__g|=4;try{if((s=(o=a.constructor)&&o.getDerivedStateFromError)&&a.setState(o.getDerivedStateFromError(e)),a.componentDidCatch&&(a.componentDidCatch(e,r||{}),s=1),s&&8&a.__g)return void(a.__g|=2)}catch(t){e=t}}throw i=0,e}},t=0,x.prototype.setState=function(e,t){var n=this.__s;n&&n!=this.state||(n=this.__s=g({},this.state)),typeof e==`function`&&(e=e(g({},n),this.props)),e&&(g(n,e),this.__v&&(t&&this.__k.push(t),T(this)))},x.prototype.forceUpdate=function(e){this.__v&&(this.__g|=4,e&&this.__h.push(e),T(this))},x.prototype.render=b,n=[],i=0,a=function(e,t){return e.__v.__b-t.__v.__b},o=Symbol(),s=/(PointerCapture)$|Capture$/i,c=0,l={};var I=function(e,t,n,r){var i;t[0]=0;for(var a=1;a<t.length;a++){var o=t[a++],s=t[a]?(t[0]|=o?1:2,n[t[a++]]):t[++a];o===3?r[0]=s:o===4?r[1]=Object.assign(r[1]||{},s):o===5?(r[1]=r[1]||{})[t[++a]]=s:o===6?r[1][t[++a]]+=s+``:o?(i=e.apply(s,I(e,s,n,[``,null])),r.push(i),s[0]?t[0]|=2:(t[a-2]=0,t[a]=i)):r.push(s)}return r},se=new Map;function ce(e){var t=se.get(this);return t||(t=new Map,se.set(this,t)),(t=I(this,t.get(e)||(t.set(e,t=function(e){for(var t,n,r=1,i=``,a=``,o=[0],s=function(e){r===1&&(e||(i=i.replace(/^\s*\n\s*|\s*\n\s*$/g,``)))?o.push(0,e,i):r===3&&(e||i)?(o.push(3,e,i),r=2):r===2&&i===`...`&&e?o.push(4,e,0):r===2&&i&&!e?o.push(5,0,!0,i):r>=5&&((i||!e&&r===5)&&(o.push(r,0,i,n),r=6),e&&(o.push(r,e,0,n),r=6)),i=``},c=0;c<e.length;c++){c&&(r===1&&s(),s(c));for(var l=0;l<e[c].length;l++)t=e[c][l],r===1?t===`<`?(s(),o=[o],r=3):i+=t:r===4?i===`--`&&t===`>`?(r=1,i=``):i=t+i[0]:a?t===a?a=``:i+=t:t===`"`||t===`'`?a=t:t===`>`?(s(),r=1):r&&(t===`=`?(r=5,n=i,i=``):t===`/`&&(r<5||e[c][l+1]===`>`)?(s(),r===3&&(o=o[0]),r=o,(o=o[0]).push(2,0,r),r=0):t===` `||t===`	`||t===`
`||t===`\r`?(s(),r=2):i+=t),r===3&&i===`!--`&&(r=4,o=o[0])}return s(),o}(e)),t),arguments,[])).length>1?t:t[0]}var L=ce.bind(v),R,z,le,ue,de=Object.is,B=0,fe=[],pe=[],V=e,me=V.__b,he=V.__r,ge=V.diffed,_e=V.__c,ve=V.unmount,ye=V.__;function be(e,t){V.__h&&V.__h(z,e,B||t),B=0;var n=z.__H||(z.__H={__:[],__h:[]});return e>=n.__.length&&n.__.push({}),n.__[e]}function H(e){return B=1,xe(je,e)}function xe(e,t,n){var r=be(R++,2);if(r.t=e,!r.__c&&(r.__=[n?n(t):je(void 0,t),function(e){var t=(r.__N||r.__)[0],n=r.t(t,e);de(t,n)||(r.__N=[n,r.__[1]],r.__c.setState({}))}],r.__c=z,!z.__f)){z.__f=!0;var i=z.shouldComponentUpdate;z.shouldComponentUpdate=function(e,t,n){var r=this.__H;if(!r)return!0;var a=!1,o=this.props!=e;if(r.__.some(function(e){e.__N&&(a=!0,de(e.__[0],e.__N[0])||(o=!0))}),i){var s=i.call(this,e,t,n);return a?s||o:s}return!a||o}}return r.__}function U(e,t){var n=be(R++,3);!V.__s&&Ae(n.__H,t)&&(n.__P=!0,n.__=e,n.u=t,z.__H.__h.push(n))}function Se(e){return B=5,Ce(function(){return{current:e}},[])}function Ce(e,t){var n=be(R++,7);return Ae(n.__H,t)&&(n.__=e(),n.__H=t),n.__}function we(e,t){return B=8,Ce(function(){return e},t)}function Te(){var e;do{for(;e=pe.shift();)try{W(e)}catch(t){V.__e(t,{__:(e=e.__P)&&e.__v})}for(;e=fe.shift();){var t=e.__H;if(e.__P&&t)try{t.__h.some(W),t.__h.some(ke),t.__h=[]}catch(n){t.__h=[],V.__e(n,e.__v)}}}while(pe.length)}V.__b=function(e){z=null,me&&me(e)},V.__=function(e,t){e&&t.__k&&t.__k.__m&&(e.__m=t.__k.__m),ye&&ye(e,t)},V.__r=function(e){he&&he(e),R=0;var t=(z=e.__c).__H;t&&(le==z?z.__h=[]:(t.__h.some(W),t.__h.some(ke),R=0),t.__h=[],t.__.some(function(e){e.__N&&(e.__=e.__N),e.u=e.__N=void 0})),le=z},V.diffed=function(e){ge&&ge(e);var t=e.__c;t&&t.__H&&(t.__H.__h.length&&Oe(fe.push(t)),t.__H.__.some(function(e){e.u&&(e.__H=e.u)})),le=z=null},V.__c=function(e,t){t.some(function(e){try{e.__h.some(W),e.__h=e.__h.filter(function(e){return!e.__||ke(e)})}catch(t){e.__h=[function(){throw t}]}}),_e&&_e(e,t)},V.unmount=function(e){ve&&ve(e);var t,n,r=e.__c;r&&r.__H&&(r.__H.__.some(function(r){try{if(r.__P&&r.__c){if(n===void 0){for(n=e.__;n&&(!n.__c||!n.__c.__P);)n=n.__;n&&=n.__c}r.__P=n,Oe(pe.push(r))}else W(r)}catch(e){t=e}}),r.__H=void 0,t&&V.__e(t,r.__v))};var Ee=typeof requestAnimationFrame==`function`;function De(e){var t,n=function(){clearTimeout(r),Ee&&cancelAnimationFrame(t),setTimeout(e)},r=setTimeout(n,35);Ee&&(t=requestAnimationFrame(n))}function Oe(e){e!=1&&ue==V.requestAnimationFrame||((ue=V.requestAnimationFrame)||De)(Te)}function W(e){var t=z,n=e.__c;typeof n==`function`&&(e.__c=void 0,n()),z=t}function ke(e){var t=z;e.__c=e.__(),z=t}function Ae(e,t){return!e||e.length!=t.length||t.some(function(t,n){return!de(t,e[n])})}function je(e,t){return typeof t==`function`?t(e):t}var Me=`cornjacket.token`;function Ne(){return sessionStorage.getItem(Me)??``}function Pe(e){e?sessionStorage.setItem(Me,e):sessionStorage.removeItem(Me)}function Fe(e){return e?{Authorization:`Bearer ${e}`}:{}}async function Ie(){return await(await fetch(`/health`)).json()}var G=class extends Error{status;constructor(e,t){super(t),this.status=e}};async function Le(e){let t=e.statusText;try{t=(await e.json()).message??t}catch{}throw new G(e.status,t)}function Re(e){try{let t=e.split(`.`)[1]??``,n=atob(t.replace(/-/g,`+`).replace(/_/g,`/`)),r=JSON.parse(n).scope;return new Set(typeof r==`string`?r.split(` `).filter(Boolean):[])}catch{return new Set}}function ze(e={}){let t=new URLSearchParams;for(let[n,r]of Object.entries(e))r!==void 0&&r!==``&&t.set(n,String(r));let n=t.toString();return n?`?${n}`:``}async function Be(e,t,n,r,i){let a={method:t,headers:Fe(e)};i!==void 0&&(a.body=JSON.stringify(i),a.headers={...Fe(e),"content-type":`application/json`});let o=await fetch(`${n}${ze(r)}`,a);return o.ok||await Le(o),await o.json()}var K=(e,t,n)=>Be(e,`GET`,t,n),q=(e,t,n={})=>Be(e,`POST`,t,void 0,n);async function Ve(e){let t=await fetch(`/api/v1/projections/sensor_state?limit=1`,{headers:Fe(e)});t.ok||await Le(t)}async function He(e,t,n,r,i){let a=new URLSearchParams;t.event_type_prefix&&a.set(`event_type_prefix`,t.event_type_prefix),t.aggregate_id&&a.set(`aggregate_id`,t.aggregate_id),n&&a.set(`position`,n);let o=await fetch(`/api/v1/watch/events?${a}`,{headers:Fe(e),signal:i});o.ok&&o.body||await Le(o);let s=o.body.pipeThrough(new TextDecoderStream).getReader(),c=``;for(;;){let{value:e,done:t}=await s.read();if(t)return;c+=e;let n;for(;(n=c.indexOf(`
`))>=0;){let e=c.slice(0,n).trimEnd();c=c.slice(n+1),e.startsWith(`data:`)&&r(JSON.parse(e.slice(5)))}}}function J(e){let t=e instanceof G?` (${e.status})`:``;return`${e.message}${t}`}function Y(e,t,n=0){let[r,i]=H(null),[a,o]=H(``),[s,c]=H(0);U(()=>{let t=!0;return e().then(e=>t&&(i(e),o(``)),e=>t&&o(J(e))),()=>{t=!1}},[...t,s]);let l=we(()=>c(e=>e+1),[]);return U(()=>{if(!n)return;let e=setInterval(l,n);return()=>clearInterval(e)},[n]),{value:r,error:a,reload:l}}function X(e){return e.error?L`<p class="error" role="alert">${e.error}</p>`:null}function Z(e){if(!e)return``;let t=new Date(e);return Number.isNaN(t.getTime())?e:t.toISOString().replace(`T`,` `).replace(/\.\d+Z$/,`Z`)}function Q(e){let[t,n]=H(!1);return t?L`<span class="confirm" role="group" aria-label=${e.question}
    onKeyDown=${e=>e.key===`Escape`&&n(!1)}>
    <span>${e.question}</span>
    <button type="button" class="danger" autofocus
      onClick=${async()=>(n(!1),await e.onConfirm())}>Confirm</button>
    <button type="button" onClick=${()=>n(!1)}>Cancel</button>
  </span>`:L`<button type="button" onClick=${()=>n(!0)}>${e.label}</button>`}function Ue(e){let{offset:t,limit:n,total:r}=e,i=Math.min(t+n,r);return L`<nav class="pager" aria-label="pages">
    <button type="button" disabled=${t<=0}
      onClick=${()=>e.onOffset(Math.max(0,t-n))}>Previous</button>
    <span data-testid="page-range">${r?`${t+1}–${i} of ${r}`:`none`}</span>
    <button type="button" disabled=${i>=r}
      onClick=${()=>e.onOffset(t+n)}>Next</button>
  </nav>`}function We(e){return L`<pre class="json">${JSON.stringify(e.value,null,2)}</pre>`}function Ge(e){return new Date(Date.now()-e*36e5).toISOString().slice(0,16)}function Ke(e){let[t,n]=H({from:Ge(24),to:``}),[r,i]=H(t),[a,o]=H([``]),s=a[a.length-1],c=Y(()=>K(e.session.token,`/api/v1/audit`,{from:t.from?new Date(t.from).toISOString():void 0,to:t.to?new Date(t.to).toISOString():void 0,page_size:50,page_token:s}),[t,s]),l=c.value?.records??[],u=c.value?.next_page_token;return L`<main>
    <h1>Audit log</h1>
    <form class="filters" onSubmit=${e=>(e.preventDefault(),o([``]),n({...r}))}>
      <label>From<input type="datetime-local" name="from" value=${r.from}
        onInput=${e=>i({...r,from:e.target.value})} /></label>
      <label>To<input type="datetime-local" name="to" value=${r.to}
        onInput=${e=>i({...r,to:e.target.value})} /></label>
      <button type="submit">Show</button>
    </form>
    <p class="status">Times are your browser's local time.</p>
    <${X} error=${c.error} />
    <table>
      <thead><tr><th>At</th><th>Who</th><th>Action</th><th>Target</th><th>Outcome</th><th>Change</th></tr></thead>
      <tbody data-testid="audit">${l.map(e=>L`<tr data-audit-id=${e.audit_id}>
          <td>${Z(e.at)}</td><td>${e.subject}</td><td>${e.owner}: ${e.action}</td><td>${e.target}</td>
          <td class=${e.outcome===`OK`?`ok`:`error`}>${e.outcome}${e.error?`: ${e.error}`:``}</td>
          <td>${e.change&&Object.keys(e.change).length>0&&L`<details><summary>change</summary><${We} value=${e.change} /></details>`}</td></tr>`)}</tbody>
    </table>
    <nav class="pager" aria-label="pages">
      <button type="button" disabled=${a.length<=1} onClick=${()=>o(a.slice(0,-1))}>Previous</button>
      <button type="button" disabled=${!u} onClick=${()=>u&&o([...a,u])}>Next</button>
    </nav>
  </main>`}function qe(e){let t=Y(()=>K(e.session.token,`/api/v1/breakers`),[]),n=t.value?.breakers??[];return L`<main>
    <h1>Breakers</h1>
    <p><button type="button" onClick=${()=>t.reload()}>Refresh</button></p>
    <${X} error=${t.error} />
    <table>
      <thead><tr><th>Endpoint</th><th>State</th><th>Failures in a row</th><th>Retry at</th><th>Updated</th></tr></thead>
      <tbody data-testid="breakers">${n.map(e=>L`<tr data-endpoint=${e.endpoint}>
          <td>${e.endpoint}</td><td class=${e.state===`closed`?`ok`:`error`}>${e.state}</td>
          <td>${e.consecutive_failures??0}</td><td>${Z(e.retry_at)}</td><td>${Z(e.updated_at)}</td></tr>`)}</tbody>
    </table>
    ${t.value&&!n.length&&L`<p class="status">No endpoint has a breaker yet.</p>`}
  </main>`}var Je=20;function Ye(e){return e.attempts.length?L`<table class="attempts">
    <thead><tr><th>#</th><th>Started</th><th>Outcome</th><th>HTTP</th><th>ms</th><th>Error</th></tr></thead>
    <tbody data-testid="attempts">${e.attempts.map(e=>L`<tr><td>${e.attempt}</td><td>${Z(e.started_at)}</td><td>${e.outcome}</td>
        <td>${e.status_code||``}</td><td>${e.duration_ms}</td><td>${e.error}</td></tr>`)}</tbody>
  </table>`:L`<p class="status">no attempts yet</p>`}function Xe(e){let{token:t}=e.session,[n,r]=H({rule_id:e.ruleId,status:``}),[i,a]=H(n),[o,s]=H(0),[c,l]=H(``),u=Y(()=>K(t,`/api/v1/deliveries`,{...n,limit:Je,offset:o}),[n,o]),d=u.value?.deliveries??[];return L`<main>
    <h1>Deliveries</h1>
    <form class="filters" onSubmit=${e=>(e.preventDefault(),s(0),r({...i}))}>
      <label>Rule id<input name="rule_id" value=${i.rule_id}
        onInput=${e=>a({...i,rule_id:e.target.value})} /></label>
      <label>Status<select name="status" value=${i.status}
        onChange=${e=>a({...i,status:e.target.value})}>
        ${[``,`pending`,`delivered`,`failed`,`discarded`,`suppressed`].map(e=>L`<option value=${e}>${e||`any`}</option>`)}
      </select></label>
      <button type="submit">Filter</button>
      <button type="button" onClick=${()=>u.reload()}>Refresh</button>
    </form>
    <${X} error=${u.error} />
    <table>
      <thead><tr><th>Created</th><th>Status</th><th>Target</th><th>Event</th><th>Attempts</th><th></th></tr></thead>
      <tbody data-testid="deliveries">${d.map(e=>L`<tr data-delivery-id=${e.delivery_id} data-event-id=${e.event_id} data-status=${e.status}>
          <td>${Z(e.created_at)}</td><td>${e.status}</td><td>${e.target_url}</td>
          <td><a href=${`#/lineage/${e.event_id}`}>${e.event_type}</a></td><td>${e.attempt_count}</td>
          <td><button type="button" onClick=${()=>l(c===e.delivery_id?``:e.delivery_id)}
            >Attempts</button></td></tr>
          ${c===e.delivery_id&&L`<tr><td colspan="6"><${Ye} attempts=${e.attempts??[]} /></td></tr>`}`)}</tbody>
    </table>
    ${u.value&&L`<${Ue} offset=${o} limit=${Je} total=${u.value.total??0} onOffset=${s} />`}
  </main>`}var Ze=(function(){let e=typeof document<`u`&&document.createElement(`link`).relList;return e&&e.supports&&e.supports(`modulepreload`)?`modulepreload`:`preload`})(),Qe=function(e){return`/console/`+e},$e={},et={},tt=function(e){return e.pathname.endsWith(`.css`)},nt=function(e,t,n){if(t in e)return e[t];let r=n();if(!r){e[t]=void 0;return}let i=r.then(()=>{e[t]=void 0},n=>{throw delete e[t],n});return e[t]=i,i},rt=function(e,t,n){let r=Promise.resolve();if(t&&t.length>0){let e,i=document.querySelector(`meta[property=csp-nonce]`),a=i?.nonce||i?.getAttribute(`nonce`);function o(e){return Promise.all(e.map(e=>Promise.resolve(e).then(e=>({status:`fulfilled`,value:e}),e=>({status:`rejected`,reason:e}))))}function s(e){return import.meta.resolve?new URL(import.meta.resolve(e)):new URL(e,import.meta.url)}r=o(t.map(t=>{t=Qe(t,n);let r=s(t),i=tt(r);return nt($e,r.href,()=>{if(e===void 0){e={all:new Set,styles:new Set};let t=document.getElementsByTagName(`link`);for(let n=t.length-1;n>=0;n--){let r=t[n];e.all.add(r.href),r.rel===`stylesheet`&&e.styles.add(r.href)}}let t=i?e.styles:e.all,n=i?et[r.href]:void 0;if(!n&&t.has(r.href))return;let o=document.createElement(`link`);if(o.rel=i?`stylesheet`:Ze,i||(o.as=`script`),o.crossOrigin=``,o.href=r.href,a&&o.setAttribute(`nonce`,a),n&&delete et[r.href],n?.isConnected?n.replaceWith(o):document.head.appendChild(o),i)return new Promise((e,t)=>{let n=i=>{o.removeEventListener(`load`,n),o.removeEventListener(`error`,n),i.type===`error`?(et[r.href]=o,t(Error(`Unable to preload CSS for ${r}`))):e(i)};o.addEventListener(`load`,n),o.addEventListener(`error`,n)})})}).filter(e=>e!==void 0))}function i(e){let t=new Event(`vite:preloadError`,{cancelable:!0});if(t.payload=e,window.dispatchEvent(t),!t.defaultPrevented)throw e}return r.then(t=>{for(let e of t||[])e.status===`rejected`&&i(e.reason);return e().catch(i)})},it={"1h":{seconds:3600,buckets:[`10s`,`1m`,`5m`]},"24h":{seconds:86400,buckets:[`1m`,`15m`,`1h`]},"7d":{seconds:604800,buckets:[`1h`,`6h`,`1d`]}},at={s:1e3,m:6e4,h:36e5,d:864e5};function ot(e){return Number(e.slice(0,-1))*at[e.slice(-1)]}async function st(e){try{return await e}catch(e){if(e instanceof G&&e.status===404)return null;throw e}}function ct(e,t,n,r){let i=Date.parse(e.origin??``)/1e3,a=Number(e.bucket_seconds??0),o=new Map;(e.index??[]).forEach((t,n)=>{o.set(i+Number(t)*a,[e.avg?.[n]??null,null])});for(let e of t){let t=Date.parse(e.event_time)/1e3,n=o.get(t);o.set(t,[n?.[0]??null,e.value])}let s=[...o.keys()].sort((e,t)=>e-t);return{times:s,values:s.map(e=>o.get(e)[0]),anomalies:s.map(e=>o.get(e)[1]),start:n.getTime()/1e3,end:r.getTime()/1e3}}function lt(e){let[t,n]=H(`1h`),[r,i]=H(`1m`),a=Se(null),{token:o,device:s,metric:c}=e,{value:l,error:u}=Y(async()=>{let e=ot(r),n=new Date(Math.ceil(Date.now()/e)*e),i=new Date(n.getTime()-it[t].seconds*1e3),a=encodeURIComponent(s),[l,u]=await Promise.all([K(o,`/api/v1/devices/${a}/series/${encodeURIComponent(c)}`,{start:i.toISOString(),end:n.toISOString(),bucket:r,aggregates:`avg`}),K(o,`/api/v1/inference/anomalies`,{device:s,from:i.toISOString(),to:n.toISOString(),page_size:100}).then(e=>(e.anomalies??[]).filter(e=>e.metric===c))]);return{series:l,anomalies:u,start:i,end:n}},[s,c,t,r],1e4);U(()=>{if(!l||!a.current)return;let e=a.current,t=()=>{},n=!0;return rt(()=>import(`./chart-CtHLLhYz.js`).then(r=>{n&&(t=r.drawChart(e,c,ct(l.series,l.anomalies,l.start,l.end)))}),[]),()=>{n=!1,t()}},[l]);let d=e=>{n(e),it[e].buckets.includes(r)||i(it[e].buckets[1])};return L`<section>
    <h2>${c}</h2>
    <form class="filters" onSubmit=${e=>e.preventDefault()}>
      <label>Range<select name="range" value=${t}
        onChange=${e=>d(e.target.value)}>
        ${Object.keys(it).map(e=>L`<option value=${e}>last ${e}</option>`)}
      </select></label>
      <label>Bucket<select name="bucket" value=${r}
        onChange=${e=>i(e.target.value)}>
        ${it[t].buckets.map(e=>L`<option value=${e}>${e}</option>`)}
      </select></label>
    </form>
    <${X} error=${u} />
    <div class="chart" ref=${a} data-testid="chart"
      data-points=${l?(l.series.index??[]).length:``}></div>
    ${l&&L`<p class="status">${`${(l.series.index??[]).length} buckets from ${l.series.source||`no data`}; ${l.anomalies.length} anomalies`}</p>
    ${l.anomalies.length>0&&L`<table><thead><tr><th>Anomaly at</th><th>Value</th><th>Score</th><th>Reading</th></tr></thead>
        <tbody data-testid="anomalies">${l.anomalies.map(e=>L`<tr><td>${Z(e.event_time)}</td><td>${e.value}</td><td>${e.score.toFixed(2)}</td>
            <td><a href=${`#/lineage/${e.source_event_id}`}>lineage</a></td></tr>`)}</tbody></table>`}`}
  </section>`}function ut(e){let[t,n]=H(e.device),[r,i]=H(``),{token:a}=e.session,o=e.device;U(()=>n(o),[o]);let{value:s,error:c}=Y(async()=>{if(!o)return null;let e=encodeURIComponent(o),[t,n,r]=await Promise.all([st(K(a,`/api/v1/devices/${e}/latest`)),(async()=>(await K(a,`/api/v1/inference/anomalies`,{device:o,page_size:1})).anomalies?.length?st(K(a,`/api/v1/projections/device_health/${e}`)):null)(),st(K(a,`/api/v1/projections/sensor_state/${e}`))]);return{latest:t?.values??[],health:n,state:r}},[o,a],5e3),l=s?.latest.map(e=>e.metric)??[],u=l.includes(r)?r:l[0],d=s?.health?String(s.health.state.status??``):`ok`;return L`<main>
    <h1>Device${o?` ${o}`:``}</h1>
    <form class="filters" onSubmit=${e=>{e.preventDefault(),t.trim()&&(location.hash=`#/device/${encodeURIComponent(t.trim())}`)}}>
      <label>Device id<input name="device" value=${t}
        onInput=${e=>n(e.target.value)} /></label>
      <button type="submit">Show</button>
    </form>
    <${X} error=${c} />
    ${o&&L`<p class="status">Refreshed every 5 s (the chart every 10 s).</p>`}
    ${s&&L`<section class="cards">
        <div class="card"><h2>Health</h2>
          <p data-testid="device-health" class=${d===`ok`?`ok`:`error`}>${d}</p>
          ${s.health&&L`<p class="status">${`last anomaly ${Z(String(s.health.state.last_anomaly_at??``))}, ${String(s.health.state.anomalies_24h??0)} in 24 h`}</p>`}
        </div>
        <div class="card"><h2>Latest values</h2>
          ${s.latest.length?L`<dl data-testid="latest">${s.latest.map(e=>L`<dt>${e.metric}</dt><dd>${e.value} <small>${Z(e.time)}</small></dd>`)}</dl>`:L`<p class="status">no time series yet</p>`}
        </div>
        <div class="card"><h2>Last event</h2>
          ${s.state?L`<p data-testid="last-event"><a href=${`#/lineage/${s.state.last_event_id}`}
                  >${s.state.last_event_id}</a><br /><small>${Z(s.state.last_event_timestamp)}</small></p>
                <${We} value=${s.state.state} />`:L`<p class="status">none</p>`}
        </div>
      </section>
      ${l.length>1&&L`<label>Metric<select name="metric" value=${u}
          onChange=${e=>i(e.target.value)}>
          ${l.map(e=>L`<option value=${e}>${e}</option>`)}</select></label>`}
      ${u&&L`<${lt} token=${a} device=${o} metric=${u} />`}`}
  </main>`}var dt=20;function ft(e){let{token:t,admin:n}=e.session,[r,i]=H({consumer:``,status:`pending`}),[a,o]=H(r),[s,c]=H(0),[l,u]=H(``),[d,f]=H(``),p=Y(()=>K(t,`/api/v1/dlq`,{"filter.consumer":r.consumer,"filter.status":r.status,limit:dt,offset:s}),[r,s]),m=async(e,n)=>{try{let r=(await q(t,`/api/v1/dlq:${e}`,{dlq_ids:[n]})).outcomes?.[0];f(`${e} ${n}: ${r?.status??`done`}${r?.error?` (${r.error})`:``}`)}catch(t){f(`${e} ${n} failed: ${J(t)}`)}p.reload()},h=p.value?.dead_letters??[];return L`<section>
    <h2>Event handler dead letters</h2>
    <form class="filters" onSubmit=${e=>(e.preventDefault(),c(0),i({...a}))}>
      <label>Consumer<input name="consumer" value=${a.consumer}
        onInput=${e=>o({...a,consumer:e.target.value})} /></label>
      <label>Status<select name="status" value=${a.status}
        onChange=${e=>o({...a,status:e.target.value})}>
        ${[`pending`,`replayed`,`discarded`,``].map(e=>L`<option value=${e}>${e||`any`}</option>`)}
      </select></label>
      <button type="submit">Filter</button>
    </form>
    <${X} error=${p.error} />
    ${d&&L`<p class="status" role="status">${d}</p>`}
    <table>
      <thead><tr><th>Failed</th><th>Consumer</th><th>Event</th><th>Error</th><th>Status</th><th></th></tr></thead>
      <tbody data-testid="dead-letters">${h.map(e=>L`<tr data-dlq-id=${e.dlq_id}>
          <td>${Z(e.failed_at)}</td><td>${e.consumer}</td>
          <td>${e.event_type} ${e.aggregate_id}</td><td>${e.error_message}</td>
          <td>${e.status} (${e.retry_count??0} retries)</td>
          <td class="actions">
            <button type="button" onClick=${()=>u(l===e.dlq_id?``:e.dlq_id)}>Inspect</button>
            ${n&&e.status===`pending`&&L`<${Q} label="Replay" question="Replay this dead letter?"
                onConfirm=${()=>m(`replay`,e.dlq_id)} />
              <${Q} label="Discard" question="Discard this dead letter?"
                onConfirm=${()=>m(`discard`,e.dlq_id)} />`}
          </td></tr>
          ${l===e.dlq_id&&L`<tr><td colspan="6"><${We} value=${e} />
            ${e.event_id&&L`<a href=${`#/lineage/${e.event_id}`}>lineage of ${e.event_id}</a>`}</td></tr>`}`)}</tbody>
    </table>
    ${p.value&&L`<${Ue} offset=${s} limit=${dt} total=${p.value.total??0} onOffset=${c} />`}
  </section>`}function pt(e){let{token:t,admin:n}=e.session,[r,i]=H(``),[a,o]=H(``),[s,c]=H(0),[l,u]=H(``),[d,f]=H(``),p=Y(()=>K(t,`/api/v1/deliveries`,{status:`failed`,rule_id:r,limit:dt,offset:s}),[r,s]),m=async e=>{try{let n=await q(t,`/api/v1/deliveries:replay`,{delivery_ids:[e]});f(`replayed ${n.replayed??0} delivery (${e})`)}catch(t){f(`replay ${e} failed: ${J(t)}`)}p.reload()},h=async e=>{try{await q(t,`/api/v1/deliveries/${e}:discard`),f(`discarded ${e}`)}catch(t){f(`discard ${e} failed: ${J(t)}`)}p.reload()},g=p.value?.deliveries??[];return L`<section>
    <h2>Failed webhook deliveries</h2>
    <form class="filters" onSubmit=${e=>(e.preventDefault(),c(0),i(a.trim()))}>
      <label>Rule id<input name="rule_id" value=${a}
        onInput=${e=>o(e.target.value)} /></label>
      <button type="submit">Filter</button>
      <button type="button" onClick=${()=>p.reload()}>Refresh</button>
    </form>
    <${X} error=${p.error} />
    ${d&&L`<p class="status" role="status">${d}</p>`}
    <table>
      <thead><tr><th>Created</th><th>Target</th><th>Event</th><th>Attempts</th><th>Last error</th><th></th></tr></thead>
      <tbody data-testid="failed-deliveries">${g.map(e=>L`<tr data-delivery-id=${e.delivery_id} data-event-id=${e.event_id}>
          <td>${Z(e.created_at)}</td><td>${e.target_url}</td>
          <td><a href=${`#/lineage/${e.event_id}`}>${e.event_type}</a></td>
          <td>${e.attempt_count}</td><td>${e.last_error}</td>
          <td class="actions">
            <button type="button" onClick=${()=>u(l===e.delivery_id?``:e.delivery_id)}>Inspect</button>
            ${n&&L`<${Q} label="Replay" question="Send this delivery again?"
                onConfirm=${()=>m(e.delivery_id)} />
              <${Q} label="Discard" question="Give up on this delivery?"
                onConfirm=${()=>h(e.delivery_id)} />`}
          </td></tr>
          ${l===e.delivery_id&&L`<tr><td colspan="6"><${Ye} attempts=${e.attempts??[]} /></td></tr>`}`)}</tbody>
    </table>
    ${p.value&&L`<${Ue} offset=${s} limit=${dt} total=${p.value.total??0} onOffset=${c} />`}
  </section>`}function mt(e){return L`<main>
    <h1>Dead letters</h1>
    <${pt} session=${e.session} />
    <${ft} session=${e.session} />
  </main>`}function ht(e){let[t,n]=H(e.eventId),[r,i]=H(null),[a,o]=H(``),s=async t=>{try{i(await K(e.session.token,`/api/v1/events/${encodeURIComponent(t)}/lineage`)),o(``)}catch(e){i(null),o(J(e))}};return U(()=>{n(e.eventId),e.eventId&&s(e.eventId)},[e.eventId]),L`<main>
    <h1>Event lineage</h1>
    <form class="filters" onSubmit=${e=>{e.preventDefault();let n=t.trim();n&&(location.hash=`#/lineage/${encodeURIComponent(n)}`)}}>
      <label>Event id<input name="event_id" value=${t} size="40"
        onInput=${e=>n(e.target.value)} /></label>
      <button type="submit">Trace</button>
    </form>
    <${X} error=${a} />
    ${r&&L`<section>
      ${r.event&&L`<p><strong>${r.event.event_type}</strong> of${` `}<a href=${`#/device/${encodeURIComponent(r.event.aggregate_id)}`}>${r.event.aggregate_id}</a>,
        at ${Z(r.event.event_time)}</p>`}
      <ol class="timeline" data-testid="lineage">
        ${r.hops.map(e=>L`<li class=${`hop ${e.status}`} data-stage=${e.stage}>
            <span class="stage">${e.stage}</span>
            <span class="badge">${e.status}</span>
            <time>${Z(e.at)}</time>
            <span class="detail">${e.detail}</span>
          </li>`)}
      </ol>
      ${r.event&&L`<details><summary>Payload</summary><${We} value=${r.event.payload} /></details>`}
    </section>`}
  </main>`}var gt=async(e,t)=>{try{return t(await e)}catch(e){return`unavailable: ${J(e)}`}};async function _t(e){let t=new Date(Date.now()-36e5).toISOString(),n=e.admin?await Promise.all([gt(K(e.token,`/api/v1/dlq`,{"filter.status":`pending`,limit:1}),e=>e.total??0),gt(K(e.token,`/api/v1/deliveries`,{status:`failed`,limit:1}),e=>e.total??0),gt(K(e.token,`/api/v1/breakers`),e=>(e.breakers??[]).filter(e=>e.state!==`closed`).length)]):[],[r,i,a]=await Promise.all([Ie().catch(()=>({status:`unreachable`})),gt(K(e.token,`/api/v1/inference/anomalies`,{from:t,page_size:100}),e=>`${(e.anomalies??[]).length}${e.next_page_token?`+`:``}`),K(e.token,`/api/v1/stats`).then(e=>({stats:e}),e=>({statsError:`unavailable: ${J(e)}`}))]);return{health:r,dlqPending:n[0],failedDeliveries:n[1],openBreakers:n[2],anomaliesHour:i,...a}}var vt=e=>Number(e??0),yt=(e,t)=>`${vt(e)}${t?`+`:``}`;function bt(e){let t=e??0;return t<1?``:t<120?`, oldest ${Math.round(t)} s`:`, oldest ${Math.round(t/60)} min`}function xt(e){let t=e.stats;if(!t)return e.error?L`<p class="error" data-testid="stats-error">${e.error}</p>`:null;let n=(t.consumer_lag??[]).filter(e=>!e.known||vt(e.lag)>0).length;return L`<section class="cards">
      <div class="card figure">
        <h2>Ingest rate</h2>
        <p data-testid="ingest-rate" class="big">${(t.ingest_rate_per_second??0).toFixed(1)}/s</p>
        <p data-testid="accepted-minute">${yt(t.accepted_last_minute,t.accepted_last_minute_capped)} accepted in the last minute</p>
      </div>
      <div class="card figure">
        <h2>Outbox</h2>
        <p data-testid="outbox-depth" class=${vt(t.outbox_depth)>0?`big error`:`big`}>${yt(t.outbox_depth,t.outbox_depth_capped)}</p>
        <p>rows waiting for the relay${bt(t.outbox_oldest_age_seconds)}</p>
      </div>
      <div class="card figure">
        <h2>Consumer lag</h2>
        <table data-testid="consumer-lag">
          <tbody>${(t.consumer_lag??[]).map(e=>L`<tr data-group=${e.group}><td>${e.group}</td>
              <td class=${!e.known||vt(e.lag)>0?`error`:``}>${e.known?vt(e.lag):`unknown`}</td></tr>`)}</tbody>
        </table>
        <p>${n?`${n} behind`:`every group caught up`}</p>
      </div>
    </section>
    ${t.unavailable?.length?L`<p class="error" data-testid="stats-unavailable">Not answering: ${t.unavailable.join(`, `)}</p>`:null}`}function St(e){if(e.value===void 0)return null;let t=typeof e.value==`number`&&e.value>0;return L`<div class="card figure">
    <h2>${e.href?L`<a href=${e.href}>${e.label}</a>`:e.label}</h2>
    <p data-testid=${e.id} class=${t?`big error`:`big`}>${e.value}</p>
  </div>`}function Ct(e){let[t,n]=H(null);U(()=>{let t=!0,r=()=>_t(e.session).then(e=>t&&n(e));r();let i=setInterval(r,5e3);return()=>{t=!1,clearInterval(i)}},[e.session]);let r=t?.health;return L`<main>
    <h1>Overview</h1>
    ${r&&L`<p>Platform: <strong data-testid="health" class=${r.status===`healthy`?`ok`:`error`}
        >${r.status}</strong></p>
      ${r.unhealthy?.length?L`<p class="error">Not serving: ${r.unhealthy.join(`, `)}</p>`:L`<p>Every service is serving.</p>`}`}
    ${t&&L`<section class="cards">
      <${St} id="dlq-pending" label="Dead letters pending" value=${t.dlqPending} href="#/dlq" />
      <${St} id="failed-deliveries" label="Failed deliveries" value=${t.failedDeliveries} href="#/dlq" />
      <${St} id="open-breakers" label="Open breakers" value=${t.openBreakers} href="#/breakers" />
      <${St} id="anomalies-hour" label="Anomalies, last hour" value=${t.anomaliesHour} />
    </section>
    <${xt} stats=${t.stats} error=${t.statsError} />`}
    <p class="status">Refreshed every 5 s (the figures are at most about a second old).</p>
  </main>`}var wt=[`sensor_state`,`user_session`,`device_health`],Tt=25;function Et(e){let[t,n]=H(wt[0]),[r,i]=H(0),a=Y(()=>K(e.session.token,`/api/v1/projections/${t}`,{limit:Tt,offset:r}),[t,r]),o=a.value?.projections??[];return L`<main>
    <h1>Projections</h1>
    <form class="filters" onSubmit=${e=>e.preventDefault()}>
      <label>Type<select name="projection_type" value=${t}
        onChange=${e=>(i(0),n(e.target.value))}>
        ${wt.map(e=>L`<option value=${e}>${e}</option>`)}
      </select></label>
      <button type="button" onClick=${()=>a.reload()}>Refresh</button>
    </form>
    <${X} error=${a.error} />
    <table>
      <thead><tr><th>Aggregate</th><th>State</th><th>Last event</th><th>Updated</th></tr></thead>
      <tbody data-testid="projections">${o.map(e=>L`<tr data-aggregate-id=${e.aggregate_id}>
          <td>${t===`user_session`?e.aggregate_id:L`<a href=${`#/device/${encodeURIComponent(e.aggregate_id)}`}>${e.aggregate_id}</a>`}</td>
          <td><code>${JSON.stringify(e.state)}</code></td>
          <td><a href=${`#/lineage/${e.last_event_id}`}>${Z(e.last_event_timestamp)}</a></td>
          <td>${Z(e.updated_at)}</td></tr>`)}</tbody>
    </table>
    ${a.value&&L`<${Ue} offset=${r} limit=${Tt} total=${a.value.total??0} onOffset=${i} />`}
  </main>`}var Dt=20,Ot={name:``,event_type_pattern:`sensor.reading`,condition:``,url:``};function kt(e){if(!e.startsWith(`condition:`))return null;let t=/position (\d+)/.exec(e);return t?Number(t[1]):null}function At(e){let{rule:t}=e,[n,r]=H(t?{name:t.name,event_type_pattern:t.event_type_pattern,condition:t.condition??``,url:t.target.url}:Ot),[i,a]=H(``),[o,s]=H(``),c=e=>t=>r({...n,[e]:t.target.value}),l=async r=>{r.preventDefault(),s(n.condition);try{if(t){let r={name:n.name,event_type_pattern:n.event_type_pattern,condition:n.condition};n.url!==t.target.url&&(r.target={url:n.url}),await Be(e.session.token,`PATCH`,`/api/v1/rules/${t.rule_id}`,void 0,r),e.onDone(`saved ${n.name}`)}else{let t=await q(e.session.token,`/api/v1/rules`,{name:n.name,event_type_pattern:n.event_type_pattern,condition:n.condition,target:{url:n.url},enabled:!0});e.onDone(`created ${t.name}`+(t.generated_secret?`; its signing secret (shown once): ${t.generated_secret}`:``))}}catch(e){a(e instanceof G?e.message:J(e))}},u=kt(i);return L`<form class="rule-form" onSubmit=${l} aria-label=${t?`edit rule`:`new rule`}>
    <h2>${t?`Edit ${t.name}`:`New rule`}</h2>
    <label>Name<input name="name" value=${n.name} onInput=${c(`name`)} required /></label>
    <label>Event type pattern<input name="event_type_pattern" value=${n.event_type_pattern}
      onInput=${c(`event_type_pattern`)} placeholder="sensor.reading, sensor.* or *" /></label>
    <label>Condition<input name="condition" value=${n.condition} onInput=${c(`condition`)}
      class="mono" placeholder='payload.value > 80 and payload.unit == "C"'
      aria-invalid=${u!==null} aria-describedby=${u===null?void 0:`condition-error`} /></label>
    ${u!==null&&L`<pre class="caret" id="condition-error" data-testid="condition-error">${`${o}\n${` `.repeat(Math.max(0,u-1))}^ ${i.replace(/^condition: /,``)}`}</pre>`}
    <label>Webhook URL<input name="url" value=${n.url} onInput=${c(`url`)} type="url" /></label>
    ${u===null&&L`<${X} error=${i} />`}
    <p><button type="submit">${t?`Save`:`Create rule`}</button>
      <button type="button" onClick=${()=>e.onDone(``)}>Cancel</button></p>
  </form>`}var jt={event_type_pattern:`sensor.reading`,condition:``,event_type:`sensor.reading`,aggregate_id:`device-1`,source:`http`,payload:`{"value": 85, "unit": "C"}`};function Mt(e){let{rule:t}=e,[n,r]=H(jt),[i,a]=H(null),[o,s]=H(``),[c,l]=H(``),u=e=>t=>r({...n,[e]:t.target.value}),d=async r=>{r.preventDefault(),a(null),s(``);let i;try{i=JSON.parse(n.payload||`{}`)}catch(e){s(`payload is not JSON: ${J(e)}`);return}if(typeof i!=`object`||!i||Array.isArray(i)){s(`payload must be a JSON object`);return}l(t?t.condition??``:n.condition);let o={event_type:n.event_type,aggregate_id:n.aggregate_id,payload:i,metadata:{source:n.source}},c=t?{rule_id:t.rule_id,event:o}:{event_type_pattern:n.event_type_pattern,condition:n.condition,event:o};try{a(await q(e.session.token,`/api/v1/rules:test`,c))}catch(e){s(e instanceof G?e.message:J(e))}},f=kt(o),p=e=>e?`yes`:`no`;return L`<form class="rule-form" onSubmit=${d} aria-label="test a rule">
    <h2>Test against a sample event</h2>
    ${t?L`<p data-testid="test-rule-name">Rule <strong>${t.name}</strong>: <code>${t.event_type_pattern}</code>
          ${t.condition?L` where <code>${t.condition}</code>`:``}
          <button type="button" onClick=${e.onClear}>Type a pattern instead</button></p>`:L`<label>Event type pattern<input name="test_pattern" value=${n.event_type_pattern}
            onInput=${u(`event_type_pattern`)} placeholder="sensor.reading, sensor.* or *" /></label>
          <label>Condition<input name="test_condition" value=${n.condition} onInput=${u(`condition`)}
            class="mono" placeholder='payload.value > 80 and payload.unit == "C"'
            aria-invalid=${f!==null} aria-describedby=${f===null?void 0:`test-condition-error`} /></label>`}
    ${f!==null&&L`<pre class="caret" id="test-condition-error" data-testid="test-condition-error">${`${c}\n${` `.repeat(Math.max(0,f-1))}^ ${o.replace(/^condition: /,``)}`}</pre>`}
    <label>Event type<input name="test_event_type" value=${n.event_type} onInput=${u(`event_type`)} /></label>
    <label>Aggregate id<input name="test_aggregate_id" value=${n.aggregate_id} onInput=${u(`aggregate_id`)} /></label>
    <label>Source (metadata.source)<select name="test_source" value=${n.source} onChange=${u(`source`)}>
      ${[`http`,`grpc`,`mqtt`,`ai`].map(e=>L`<option value=${e}>${e}</option>`)}
    </select></label>
    <label>Payload (JSON object)<textarea name="test_payload" class="mono" rows="4"
      onInput=${u(`payload`)}>${n.payload}</textarea></label>
    ${f===null&&L`<${X} error=${o} />`}
    <p><button type="submit">Test</button></p>
    ${i&&L`<p role="status" data-testid="test-result" class=${i.matched?`ok`:`error`}>
${`${i.matched?`Matches: a delivery would be made`:`Does not match`} (pattern: ${p(i.pattern_matched)}, condition: ${p(i.condition_matched)})`}</p>`}
  </form>`}function Nt(e){let{token:t,admin:n}=e.session,[r,i]=H(0),[a,o]=H(null),[s,c]=H(``),[l,u]=H(null),d=Y(()=>K(t,`/api/v1/rules`,{limit:Dt,offset:r}),[r]),f=async(e,t)=>{try{await t(),c(e)}catch(t){c(`${e} failed: ${J(t)}`)}d.reload()},p=e=>{o(null),e&&c(e),d.reload()},m=d.value?.rules??[];return L`<main>
    <h1>Rules</h1>
    ${n&&!a&&L`<p><button type="button" onClick=${()=>o(`new`)}>New rule</button></p>`}
    ${a&&L`<${At} key=${a===`new`?`new`:a.rule_id} session=${e.session}
      rule=${a===`new`?null:a} onDone=${p} />`}
    ${s&&L`<p class="status" role="status" data-testid="rules-note">${s}</p>`}
    ${n&&L`<${Mt} key=${l?.rule_id??`inline`} session=${e.session} rule=${l}
      onClear=${()=>u(null)} />`}
    <${X} error=${d.error} />
    <table>
      <thead><tr><th>Name</th><th>Pattern</th><th>Condition</th><th>Target</th><th>State</th><th></th></tr></thead>
      <tbody data-testid="rules">${m.map(e=>L`<tr data-rule-id=${e.rule_id}>
          <td>${e.name}</td><td><code>${e.event_type_pattern}</code></td><td><code>${e.condition}</code></td>
          <td>${e.target.url}</td>
          <td>${e.enabled?`enabled`:`disabled${e.disabled_reason?`: ${e.disabled_reason}`:``}`}</td>
          <td class="actions">
            <a href=${`#/deliveries/${e.rule_id}`}>Deliveries</a>
            ${n&&L`<button type="button" onClick=${()=>o(e)}>Edit</button>
              <button type="button" onClick=${()=>u(e)}>Test</button>
              ${e.enabled?L`<button type="button" onClick=${()=>f(`disabled ${e.name}`,()=>q(t,`/api/v1/rules/${e.rule_id}:disable`,{reason:`disabled in the console`}))}>Disable</button>`:L`<button type="button" onClick=${()=>f(`enabled ${e.name}`,()=>q(t,`/api/v1/rules/${e.rule_id}:enable`))}>Enable</button>`}
              <${Q} label="Delete" question=${`Delete ${e.name} and its deliveries?`}
                onConfirm=${()=>f(`deleted ${e.name}`,()=>Be(t,`DELETE`,`/api/v1/rules/${e.rule_id}`))} />`}
          </td></tr>`)}</tbody>
    </table>
    ${d.value&&L`<${Ue} offset=${r} limit=${Dt} total=${d.value.total??0} onOffset=${i} />`}
  </main>`}var $=500;function Pt(e){let[t,n]=H({event_type_prefix:``,aggregate_id:``}),[r,i]=H(t),[a,o]=H([]),[s,c]=H(!1),[l,u]=H(0),[d,f]=H(0),[p,m]=H(`connecting`),h=Se(!1),g=Se([]);h.current=s,U(()=>{let n=new AbortController,r=``,i=[],a=0,s=0,c=()=>{s=0;let e=i.reverse();i=[],f(a),h.current?(g.current.push(...e.reverse()),g.current.length>$&&g.current.splice(0,g.current.length-$),u(g.current.length)):o(t=>e.concat(t).slice(0,$))};return o([]),(async()=>{for(;!n.signal.aborted;){try{await He(e.session.token,t,r,e=>{r=e.position||r,e.heartbeat&&m(`live`),e.end&&m(`ended: ${e.end.message}`),e.event&&(i.push(e.event),i.length>$&&i.splice(0,i.length-$),a+=1,s||=requestAnimationFrame(c))},n.signal)}catch(e){if(n.signal.aborted||(m(`disconnected: ${e.message}; retrying`),e instanceof G&&e.status<500&&e.status!==429))return}await new Promise(e=>setTimeout(e,1e3))}})(),()=>{n.abort(),s&&cancelAnimationFrame(s)}},[e.session.token,t]);let _=()=>{if(s){let e=g.current.reverse();g.current=[],u(0),o(t=>[...e,...t].slice(0,$))}c(!s)},v=e=>t=>i({...r,[e]:t.target.value});return L`<main>
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
        ${a.map(e=>L`<tr key=${e.event_id} data-event-id=${e.event_id}>
            <td>${e.ingested_at}</td><td>${e.event_type}</td>
            <td><a href=${`#/lineage/${e.event_id}`}><code>${e.event_id}</code></a></td>
            <td><a href=${`#/device/${encodeURIComponent(e.aggregate_id)}`}>${e.aggregate_id}</a></td>
            <td><code>${JSON.stringify(e.payload)}</code></td>
          </tr>`)}
      </tbody>
    </table>
    </div>
  </main>`}function Ft(){let[e,t]=H(location.hash||`#/overview`);U(()=>{let e=()=>t(location.hash||`#/overview`);return addEventListener(`hashchange`,e),()=>removeEventListener(`hashchange`,e)},[]);let[n,...r]=e.replace(/^#\/?/,``).split(`/`);return[n||`overview`,decodeURIComponent(r.join(`/`))]}function It(e){let[t,n]=H(``),[r,i]=H(``);return L`<main>
    <h1>Sign in</h1>
    <p>Paste a token (<code>cornjacket token --scope read</code>). It stays in this tab only.</p>
    <form onSubmit=${async n=>{n.preventDefault();let r=t.trim();try{await Ve(r),Pe(r),e.onToken(r)}catch(e){let t=e instanceof G?` (${e.status})`:``;i(`${e.message}${t}`)}}}>
      <label>Token<textarea name="token" aria-label="token" value=${t}
        onInput=${e=>n(e.target.value)} /></label>
      <p><button type="submit">Sign in</button></p>
      ${r&&L`<p class="error" role="alert">${r}</p>`}
    </form>
  </main>`}var Lt=[[`overview`,`Overview`,!1],[`tail`,`Live tail`,!1],[`device`,`Devices`,!1],[`lineage`,`Lineage`,!1],[`projections`,`Projections`,!1],[`dlq`,`Dead letters`,!0],[`rules`,`Rules`,!0],[`deliveries`,`Deliveries`,!0],[`breakers`,`Breakers`,!0],[`audit`,`Audit`,!0]];function Rt(e){let{page:t,arg:n,session:r}=e;switch(t){case`tail`:return L`<${Pt} session=${r} />`;case`device`:return L`<${ut} session=${r} device=${n} />`;case`lineage`:return L`<${ht} session=${r} eventId=${n} />`;case`projections`:return L`<${Et} session=${r} />`;case`dlq`:return L`<${mt} session=${r} />`;case`rules`:return L`<${Nt} session=${r} />`;case`deliveries`:return L`<${Xe} key=${n} session=${r} ruleId=${n} />`;case`breakers`:return L`<${qe} session=${r} />`;case`audit`:return L`<${Ke} session=${r} />`;default:return L`<${Ct} session=${r} />`}}function zt(){let[e,t]=Ft(),[n,r]=H(Ne()),[i,a]=H(null);U(()=>{Ie().then(a,()=>a({status:`unreachable`}))},[]);let o=i?.auth===`disabled`,s=Ce(()=>o?{token:``,admin:!0}:{token:n,admin:Re(n).has(`admin`)},[o,n]);if(!i)return L`<main><p>Loading…</p></main>`;let c=o||!!n;return L`
    ${o&&L`<div class="warning" role="alert">${i.warning}</div>`}
    <header>
      <strong>Cornjacket</strong>
      ${c&&L`<nav aria-label="pages">${Lt.filter(([,,e])=>!e||s.admin).map(([t,n])=>L`<a href=${`#/${t}`} aria-current=${e===t?`page`:void 0}>${n}</a>`)}</nav>`}
      ${!o&&n&&L`<button type="button" onClick=${()=>(Pe(``),r(``))}>Sign out</button>`}
    </header>
    ${c?L`<${Rt} page=${e} arg=${t} session=${s} />`:L`<${It} onToken=${r} />`}
  `}F(L`<${zt} />`,document.getElementById(`app`));